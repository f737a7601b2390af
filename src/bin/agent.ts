// `tcnp agent`: parse the arguments and wire the node agent (src/agent/) to production
// dependencies: the socket, the HTTP endpoints, the Kubernetes Node it keeps.
import { parseArgs } from "node:util";
import { systemClock } from "../base/clock.js";
import type { Io } from "../base/io.js";
import { askAgent, DEFAULT_AGENT_SOCKET } from "../agent/protocol.js";
import { startAgent, type AgentStatus } from "../agent/start.js";
import { statusText } from "../agent/status.js";
import { kubeAccess } from "../controller/kube.js";
import { fileSink } from "../log/file-sink.js";
import { createLogger, type Level } from "../log/logger.js";
import { nodeFetch } from "../openstack/node-fetch.js";
import { FileLock, QueuedLock } from "../state/lock.js";
import { VERSION } from "../version.js";
import { loadPlugin } from "./registry.js";
import { productionDeps } from "./wiring.js";

export const AGENT_USAGE = `usage: tcnp agent [--socket PATH] [--conf-dir DIR] [--state-dir DIR] [--listen ADDR] [--log-file FILE]
       tcnp agent status [--socket PATH] [--json]

  --socket    the plugins' socket (default $TCNP_AGENT_SOCKET or ${DEFAULT_AGENT_SOCKET}; root-only)
  --conf-dir  the network configurations the agent serves, their pools warmed at start (default
              /etc/cni/net.d; repeat it for more than one directory)
  --state-dir allocation records, pools and locks (default $TCNP_STATE_DIR or /var/lib/tcnp)
  --listen    HOST:PORT for /healthz, /readyz (pools warm) and /metrics (Prometheus)
  --log-file  default $TCNP_LOG_FILE or /var/log/tcnp/agent.log
  --node-name the Kubernetes Node this agent keeps (default $NODE_NAME): a not-ready taint until the
              pools are warm, the pod capacity annotation and the eni extended resource
  --network-policy on|off
              enforce Kubernetes NetworkPolicy for the node's pods with nftables (default on with
              --node-name; needs list/watch of networkpolicies, pods and namespaces)
  --kube-api-url, --kube-token-file, --kube-ca-cert
              Kubernetes access outside a pod (inside one, its service account is used)
  The plugins it runs for a configuration's IPAM are looked up in its own $CNI_PATH (default
  /opt/cni/bin), never in a request's.
`;

export async function agentCli(argv: string[], io: Io, onStop: (stop: () => Promise<void>) => void): Promise<number> {
  const status = argv[0] === "status";
  const opt = { type: "string" } as const;
  const { values: v } = parseArgs({
    args: status ? argv.slice(1) : argv,
    options: {
      ...{ socket: opt, "conf-dir": { type: "string", multiple: true }, "state-dir": opt, listen: opt },
      ...{ "log-file": opt, "log-level": opt },
      ...{ "network-policy": opt, "node-name": opt, "kube-api-url": opt, "kube-token-file": opt, "kube-ca-cert": opt },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (v.help) return (io.out(AGENT_USAGE), 0);
  const socket = v.socket ?? io.env["TCNP_AGENT_SOCKET"] ?? DEFAULT_AGENT_SOCKET;
  if (status) {
    try {
      const s = (await askAgent(socket, { op: "status" }, 10_000)) as AgentStatus;
      return (io.out(v.json ? `${JSON.stringify(s, null, 2)}\n` : statusText(s)), 0);
    } catch (e) {
      return (io.err(`tcnp agent status: no agent answers on ${socket}: ${(e as Error).message}\n`), 1);
    }
  }
  const env: Record<string, string | undefined> = { ...io.env };
  if (v["state-dir"] !== undefined) env["TCNP_STATE_DIR"] = v["state-dir"];
  const sink = fileSink(v["log-file"] ?? env["TCNP_LOG_FILE"] ?? "/var/log/tcnp/agent.log");
  const log = createLogger(sink, { level: (v["log-level"] as Level | undefined) ?? "info" }).child({
    agent: process.pid,
  });
  const nodeName = v["node-name"] ?? env["NODE_NAME"];
  const access = kubeAccess(env, {
    ...(v["kube-api-url"] === undefined ? {} : { apiUrl: v["kube-api-url"] }),
    ...(v["kube-token-file"] === undefined ? {} : { tokenFile: v["kube-token-file"] }),
    ...(v["kube-ca-cert"] === undefined ? {} : { caCert: v["kube-ca-cert"] }),
  });
  if (nodeName !== undefined && nodeName !== "" && access === undefined)
    return (
      io.err(`tcnp agent: --node-name ${nodeName} needs Kubernetes access (a service account, or --kube-api-url)\n`),
      2
    );
  const wiring = {
    deps: productionDeps,
    plugin: loadPlugin,
    fetch: nodeFetch,
    lock: (dir: string) => new QueuedLock(new FileLock(dir, systemClock)),
  };
  const confDirs = v["conf-dir"] ?? ["/etc/cni/net.d"];
  const node =
    nodeName !== undefined && nodeName !== "" && access !== undefined ? { name: nodeName, access } : undefined;
  const np = v["network-policy"];
  if (np !== undefined && np !== "on" && np !== "off")
    return (io.err(`tcnp agent: --network-policy must be on or off, not "${np}"\n`), 2);
  const agent = await startAgent({
    ...(np === "off" ? { networkPolicy: false } : {}),
    ...{ socket, env, log, confDirs, wiring },
    ...(v.listen === undefined ? {} : { listen: v.listen }),
    ...(node === undefined ? {} : { node }),
  });
  if (agent.address !== undefined) io.out(`tcnp agent: metrics on http://${agent.address}/metrics\n`);
  io.out(`tcnp agent ${VERSION}: serving ${socket} (pid ${process.pid})\n`);
  onStop(() => agent.stop());
  return -1;
}
