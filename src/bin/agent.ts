// `tcnp agent`: the node agent. It serves the plugins' requests on a root-only unix socket with the
// same plugin code a plugin process runs, but with one netlink socket per namespace it works in,
// keep-alive connections to the cloud, a warm token, and warm pools of mix addresses. It also
// answers `tcnp agent status`, and with --listen serves /healthz, /readyz and /metrics.
import * as fs from "node:fs";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { AgentPools } from "../agent/pools.js";
import { askAgent, DEFAULT_AGENT_SOCKET, type CniRequest, type CniResponse } from "../agent/protocol.js";
import { serveAgentSocket } from "../agent/server.js";
import type { Io } from "../base/io.js";
import { isCniPlugin } from "../base/names.js";
import { isObject, parseNetConf } from "../cni/netconf.js";
import { runCni } from "../cni/skel.js";
import { NodeLifecycle } from "../agent/node.js";
import { serveControllerHttp } from "../controller/http.js";
import { Kube, kubeAccess } from "../controller/kube.js";
import { Metrics } from "../controller/metrics.js";
import type { PoolView } from "../ipam/pool.js";
import type { NetlinkKernel } from "../kernel/netlink-kernel.js";
import type { Kernel } from "../kernel/types.js";
import { fileSink } from "../log/file-sink.js";
import { createLogger, type Level, type Logger } from "../log/logger.js";
import { nodeFetch, type NodeFetchOptions } from "../openstack/node-fetch.js";
import type { HttpFetch } from "../openstack/http.js";
import { toCniError } from "../plugins/errors.js";
import { FileLock, QueuedLock, type Lock } from "../state/lock.js";
import { systemClock } from "../base/clock.js";
import { VERSION } from "../version.js";
import { loadPlugin } from "./registry.js";
import { newTimings, timedFetch, timedKernel } from "./timing.js";
import { productionDeps, type NodeDeps } from "./wiring.js";

export const AGENT_USAGE = `usage: tcnp agent [--socket PATH] [--conf-dir DIR] [--state-dir DIR] [--listen ADDR] [--log-file FILE]
       tcnp agent status [--socket PATH] [--json]

  --socket    the plugins' socket (default $TCNP_AGENT_SOCKET or ${DEFAULT_AGENT_SOCKET}; root-only)
  --conf-dir  the CNI configurations whose mix pools are warmed at start (default /etc/cni/net.d)
  --state-dir allocation records, pools and locks (default $TCNP_STATE_DIR or /var/lib/tcnp)
  --listen    HOST:PORT for /healthz, /readyz (pools warm) and /metrics (Prometheus)
  --log-file  default $TCNP_LOG_FILE or /var/log/tcnp/agent.log
  --node-name the Kubernetes Node this agent keeps (default $NODE_NAME): a not-ready taint until the
              pools are warm, the pod capacity annotation and the eni extended resource
  --kube-api-url, --kube-token-file, --kube-ca-cert
              Kubernetes access outside a pod (inside one, its service account is used)
`;

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

// The tcnp-ipam configurations in a conf dir, as the network configurations a plugin would see.
function confsIn(dir: string): string[] {
  const out: string[] = [];
  let files: string[] = [];
  try {
    files = fs.readdirSync(dir).filter((f) => /\.(conf|conflist|json)$/.test(f));
  } catch {
    return out;
  }
  for (const f of files.sort()) {
    try {
      const c = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as unknown;
      if (!isObject(c)) continue;
      const plugins = (Array.isArray(c["plugins"]) ? c["plugins"] : [c]).filter(isObject);
      for (const p of plugins) {
        if (!isObject(p["ipam"]) || p["ipam"]["type"] !== "tcnp-ipam") continue;
        out.push(JSON.stringify({ ...p, name: c["name"], cniVersion: c["cniVersion"] ?? "1.0.0" }));
      }
    } catch {
      // a configuration we cannot read is the runtime's business
    }
  }
  return out;
}

function printStatus(s: {
  pid: number;
  version: string;
  uptimeS: number;
  inFlight: number;
  pools: PoolView[];
}): string {
  const lines = [`tcnp agent ${s.version}, pid ${s.pid}, up ${s.uptimeS} s, ${s.inFlight} request(s) in flight`];
  if (s.pools.length === 0) lines.push("no pools yet (none configured in the conf dir, no mix request served)");
  for (const p of s.pools) {
    lines.push(
      `pool ${p.networks.join(",")}${p.port === undefined ? "" : ` on port ${p.port}`}: ${p.free.length} free, ${p.inUse} in use, ${p.cooling} cooling, ${p.pendingReleases} pending cloud work; targets warm ${p.targets.warm} minimum ${p.targets.minimum} maximum ${p.targets.maximum}; ${p.ready ? "ready" : "not ready"}`,
    );
    if (p.free.length > 0) lines.push(`  free: ${p.free.join(" ")}`);
    if (p.cloudError !== undefined)
      lines.push(
        `  cloud failing: ${p.cloudError}${p.backoffUntil === undefined ? "" : ` (next try in ${Math.ceil((p.backoffUntil - Date.now()) / 1000)} s)`}`,
      );
  }
  return `${lines.join("\n")}\n`;
}

export async function agentCli(argv: string[], io: Io, onStop: (stop: () => Promise<void>) => void): Promise<number> {
  const status = argv[0] === "status";
  const { values } = parseArgs({
    args: status ? argv.slice(1) : argv,
    options: {
      socket: { type: "string" },
      "conf-dir": { type: "string", default: "/etc/cni/net.d" },
      "state-dir": { type: "string" },
      listen: { type: "string" },
      "log-file": { type: "string" },
      "log-level": { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
      "node-name": { type: "string" },
      "kube-api-url": { type: "string" },
      "kube-token-file": { type: "string" },
      "kube-ca-cert": { type: "string" },
    },
  });
  if (values.help === true) {
    io.out(AGENT_USAGE);
    return 0;
  }
  const socket = values.socket ?? io.env["TCNP_AGENT_SOCKET"] ?? DEFAULT_AGENT_SOCKET;
  if (status) {
    try {
      const s = (await askAgent(socket, { op: "status" }, 10_000)) as Parameters<typeof printStatus>[0];
      io.out(values.json === true ? `${JSON.stringify(s, null, 2)}\n` : printStatus(s));
      return 0;
    } catch (e) {
      io.err(`tcnp agent status: no agent answers on ${socket}: ${(e as Error).message}\n`);
      return 1;
    }
  }
  const env: Record<string, string | undefined> = { ...io.env };
  if (values["state-dir"] !== undefined) env["TCNP_STATE_DIR"] = values["state-dir"];
  const logFile = values["log-file"] ?? env["TCNP_LOG_FILE"] ?? "/var/log/tcnp/agent.log";
  const log = createLogger(fileSink(logFile), { level: (values["log-level"] as Level | undefined) ?? "info" }).child({
    agent: process.pid,
  });
  const agent = await startAgent({ socket, env, log, confDir: values["conf-dir"] ?? "/etc/cni/net.d" });
  let http: { address: string; close(): Promise<void> } | undefined;
  if (values.listen !== undefined) {
    const server = await serveControllerHttp(values.listen, agent.metrics, {
      healthy: () => ({ ok: true, detail: "ok" }),
      ready: () => {
        const ready = agent.pools.ready();
        return { ok: ready, detail: ready ? "pools warm" : "pools not at their minimum yet" };
      },
    });
    http = server;
    io.out(`tcnp agent: metrics on http://${server.address}/metrics\n`);
  }
  io.out(`tcnp agent ${VERSION}: serving ${socket} (pid ${process.pid})\n`);
  const nodeName = values["node-name"] ?? env["NODE_NAME"];
  let lifecycle: NodeLifecycle | undefined;
  if (nodeName !== undefined && nodeName !== "") {
    const access = kubeAccess(env, {
      ...(values["kube-api-url"] === undefined ? {} : { apiUrl: values["kube-api-url"] }),
      ...(values["kube-token-file"] === undefined ? {} : { tokenFile: values["kube-token-file"] }),
      ...(values["kube-ca-cert"] === undefined ? {} : { caCert: values["kube-ca-cert"] }),
    });
    if (access === undefined) {
      io.err(`tcnp agent: --node-name ${nodeName} needs Kubernetes access (a service account, or --kube-api-url)\n`);
      await agent.stop();
      await http?.close();
      return 2;
    }
    const kube = new Kube(
      nodeFetch({ timeoutMs: 10_000, ...(access.caCert === undefined ? {} : { caCert: access.caCert }) }),
      access,
    );
    lifecycle = new NodeLifecycle({
      kube,
      nodeName,
      log,
      pools: () => ({ ready: agent.pools.ready(), views: agent.pools.views() }),
    });
    await lifecycle.start();
  }
  onStop(async () => {
    lifecycle?.stop();
    await agent.stop();
    await http?.close();
  });
  return -1;
}

export interface RunningAgent {
  pools: AgentPools;
  metrics: Metrics;
  stop(): Promise<void>;
}

/** Start serving: the socket, the pools of the conf dir's mix configurations, their upkeep. */
export async function startAgent(opts: {
  socket: string;
  env: Record<string, string | undefined>;
  log: Logger;
  confDir: string;
}): Promise<RunningAgent> {
  const { log } = opts;
  const { NetlinkKernel } = await import("../kernel/netlink-kernel.js");
  const kernel: NetlinkKernel = await NetlinkKernel.create({ longLived: true });
  const metrics = new Metrics();
  const fetches = new Map<string, HttpFetch>();
  const locks = new Map<string, Lock>();
  const busy = new Set<string>();
  const startedAt = Date.now();
  const pools: { current?: AgentPools } = {};

  const depsFor = (env: Record<string, string | undefined>, rlog: Logger, timings?: ReturnType<typeof newTimings>) => {
    const timed: Kernel =
      timings === undefined
        ? kernel
        : timedKernel(kernel, timings, (op, ms) => rlog.debug("kernel call", { op, ms: +ms.toFixed(2) }));
    // The gratuitous ARP is best effort and never undone: the agent sends it after the answer.
    const announceLater: Kernel["announce"] = (ns, dev, ip) => {
      setImmediate(() =>
        kernel.announce(ns, dev, ip).catch((e: unknown) => rlog.warn("announce failed", { ip, dev, error: e })),
      );
      return Promise.resolve();
    };
    const k = new Proxy(timed, {
      get(t, prop) {
        if (prop === "announce") return announceLater;
        const v = Reflect.get(t, prop) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    const d: NodeDeps = productionDeps({ env, log: rlog, kernel: async (): Promise<Kernel> => k });
    d.httpFetch = (o: NodeFetchOptions) => {
      const k = JSON.stringify(o);
      let f = fetches.get(k);
      if (f === undefined) {
        const plain = nodeFetch(o);
        f = (req, call) => {
          const t0 = performance.now();
          return plain(req, call).then(
            (r) => {
              metrics.inc("tcnp_agent_cloud_requests_total", "Cloud API requests by service and outcome", {
                method: req.method,
                outcome: r.status >= 500 ? "5xx" : r.status >= 400 ? "4xx" : "ok",
              });
              metrics.observe(
                "tcnp_agent_cloud_request_seconds",
                "Cloud API request latency",
                (performance.now() - t0) / 1000,
                LATENCY_BUCKETS,
              );
              return r;
            },
            (e: unknown) => {
              metrics.inc("tcnp_agent_cloud_requests_total", "Cloud API requests by service and outcome", {
                method: req.method,
                outcome: "network-error",
              });
              throw e;
            },
          );
        };
        fetches.set(k, f);
      }
      return timings === undefined ? f : timedFetch(f, timings);
    };
    d.lockFor = (dir: string) => {
      let l = locks.get(dir);
      if (l === undefined) {
        l = new QueuedLock(new FileLock(dir, systemClock));
        locks.set(dir, l);
      }
      return l;
    };
    d.busy = (c: string, i: string) => busy.has(`${c}/${i}`);
    if (pools.current !== undefined) d.pools = pools.current;
    return d;
  };

  const agentPools = new AgentPools(depsFor(opts.env, log.child({ part: "pools" })), {
    cloudCall: (kind, ok) =>
      metrics.inc("tcnp_agent_pool_cloud_work_total", "Pool cloud work by kind and outcome", {
        kind,
        outcome: ok ? "ok" : "error",
      }),
  });
  pools.current = agentPools;

  // One request per pod attachment at a time, in arrival order. A runtime that killed its plugin
  // (the forwarder) sends DEL at once, while the agent may still be working on that ADD: the DEL
  // must find what the ADD made, not run beside it.
  const perPod = new Map<string, Promise<unknown>>();
  const cni = (req: CniRequest): Promise<CniResponse> => {
    const key = `${req.env["CNI_CONTAINERID"] ?? ""}/${req.env["CNI_IFNAME"] ?? ""}`;
    if (key === "/") return serve(req);
    const prev = perPod.get(key) ?? Promise.resolve();
    const mine = prev.then(
      () => serve(req),
      () => serve(req),
    );
    perPod.set(key, mine);
    void mine
      .finally(() => {
        if (perPod.get(key) === mine) perPod.delete(key);
      })
      .catch(() => {});
    return mine;
  };

  const serve = async (req: CniRequest): Promise<CniResponse> => {
    const t0 = performance.now();
    if (!isCniPlugin(req.plugin)) return { exitCode: 1, stdout: "", stderr: `unknown plugin "${req.plugin}"\n` };
    // The runtime's environment, with the agent's own settings where the runtime gave none.
    const env: Record<string, string | undefined> = {};
    for (const k of ["TCNP_STATE_DIR", "TCNP_LOCK_DIR", "PATH"]) if (opts.env[k] !== undefined) env[k] = opts.env[k];
    Object.assign(env, req.env);
    const who = `${env["CNI_CONTAINERID"] ?? ""}/${env["CNI_IFNAME"] ?? ""}`;
    const rlog = log.child({
      plugin: req.plugin,
      command: env["CNI_COMMAND"],
      containerId: env["CNI_CONTAINERID"],
      ifname: env["CNI_IFNAME"],
    });
    const timings = newTimings();
    const deps = depsFor(env, rlog, timings);
    busy.add(who);
    try {
      const plugin = await loadPlugin(req.plugin, deps);
      const out = await runCni(
        plugin,
        { env, stdin: req.stdin },
        { about: `${req.plugin} ${VERSION}: tcnp CNI plugin (agent)`, toCniError },
      );
      const secs = (performance.now() - t0) / 1000;
      const command = env["CNI_COMMAND"] ?? "";
      metrics.inc("tcnp_agent_requests_total", "Plugin requests served by the agent", {
        plugin: req.plugin,
        command,
        outcome: out.exitCode === 0 ? "ok" : "error",
      });
      if (command === "ADD" || command === "DEL")
        metrics.observe("tcnp_agent_request_seconds", "ADD and DEL latency in the agent", secs, LATENCY_BUCKETS, {
          plugin: req.plugin,
          command,
        });
      const fields = {
        durationMs: +(secs * 1000).toFixed(2),
        cloudMs: +timings.cloudMs.toFixed(2),
        cloudCalls: timings.cloudCalls,
        kernelMs: +timings.kernelMs.toFixed(2),
        kernelCalls: timings.kernelCalls,
      };
      if (out.error !== undefined)
        rlog.error("CNI command failed", { code: out.error.code, details: out.error.details, ...fields });
      else if (command !== "VERSION") rlog.info("CNI command done", fields);
      return { exitCode: out.exitCode, stdout: out.stdout, stderr: out.stderr };
    } finally {
      busy.delete(who);
      const ns = env["CNI_NETNS"];
      if (ns !== undefined && ns !== "") kernel.forget(ns);
    }
  };

  const sock = await serveAgentSocket(
    opts.socket,
    {
      cni,
      pod: (c: string, i: string) => ({ pid: process.pid, views: agentPools.podView(c, i) }),
      status: () => ({
        pid: process.pid,
        version: VERSION,
        uptimeS: Math.round((Date.now() - startedAt) / 1000),
        inFlight: sock.inFlight(),
        pools: agentPools.views(),
      }),
    },
    log,
  );
  const gauge = setInterval(() => {
    for (const v of agentPools.views()) {
      const l = { networks: v.networks.join(",") };
      metrics.set("tcnp_agent_pool_free", "Free addresses in the warm pool", v.free.length, l);
      metrics.set("tcnp_agent_pool_in_use", "Pool addresses held by pods", v.inUse, l);
      metrics.set("tcnp_agent_pool_cooling", "Released addresses cooling down", v.cooling, l);
      metrics.set("tcnp_agent_pool_pending", "Pending cloud work (intents)", v.pendingReleases, l);
    }
  }, 1000);
  gauge.unref();
  agentPools.start();
  for (const conf of confsIn(opts.confDir)) {
    try {
      const c = parseNetConf(conf, "ADD");
      await agentPools.poolFor(c);
    } catch (e) {
      log.warn("cannot pool for a configuration in the conf dir", { error: e });
    }
  }
  log.info("agent started", { socket: opts.socket, pools: agentPools.views().length });
  return {
    pools: agentPools,
    metrics,
    stop: async () => {
      clearInterval(gauge);
      // Requests in flight are answered first (they may wait on a fill), then the pools' cloud work ends.
      await sock.close();
      await agentPools.stop();
      kernel.close();
      log.info("agent stopped");
    },
  };
}
