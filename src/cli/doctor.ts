// `tcnp doctor`: diagnose one pod's network on this node (run it where the plugins run).
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { isObject } from "../cni/netconf.js";
import { diagnose, modeOf, podIpOf, type RecordedPlugin } from "../doctor/findings.js";
import { locate, ipamOf, type Attachment, type Selector } from "../doctor/locate.js";
import { neutronFacts } from "../doctor/neutron-facts.js";
import {
  attachmentSummary,
  renderJson,
  renderText,
  type AgentView,
  type DoctorReport,
  type PolicyReport,
} from "../doctor/report.js";
import { askAgent, DEFAULT_AGENT_SOCKET } from "../agent/protocol.js";
import type { PoolView } from "../ipam/pool/pool.js";
import type { Rec } from "../ipam/ledger/records.js";
import { snapshot } from "../kernel/snapshot.js";
import { HOST, type Kernel } from "../kernel/types.js";
import type { Env } from "../cni/env.js";
import { isAttachmentRecord, type AttachmentRecord } from "../plugins/attachment.js";
import { snapshotNeeds, type Expectation } from "../plugins/expect.js";
import { AttachmentRecords, lockDirOf, stateDirOf } from "../state/records.js";
import { hostVethName, podChainName } from "../net/names.js";
import { createClients } from "../openstack/clients.js";
import { fileSources, resolveCredentials } from "../openstack/credentials.js";
import { nodeFetch } from "../openstack/node-fetch.js";
import { FileTokenStore } from "../openstack/token-cache.js";
import { systemClock } from "../base/clock.js";
import { FileLock } from "../state/lock.js";
import type { Io } from "../base/io.js";
import { ATTACHMENT_PLUGINS } from "../base/names.js";

export const DOCTOR_USAGE = `usage: tcnp doctor (--netns PATH | --container ID | --pod NAMESPACE/NAME) [--json]
                   [--cache-dir DIR] [--state-dir DIR] [--route-limit N] [--no-cloud]
  Run on the node (inside the VM), where the CNI plugins run. Reads the runtime's CNI cache
  (CNI_CACHEDIR or /var/lib/cni) to find the pod, then the kernel and Neutron. Exit status 1 when
  something is wrong, 0 when healthy (warnings allowed), 2 when the pod cannot be found.
`;

export async function doctorCli(argv: string[], io: Io, kernel: () => Promise<Kernel>): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      netns: { type: "string" },
      container: { type: "string" },
      pod: { type: "string" },
      json: { type: "boolean" },
      "cache-dir": { type: "string" },
      "state-dir": { type: "string" },
      "route-limit": { type: "string" },
      "no-cloud": { type: "boolean" },
    },
  });
  const sel: Selector | undefined =
    values.netns !== undefined
      ? { netns: values.netns }
      : values.container !== undefined
        ? { container: values.container }
        : values.pod !== undefined
          ? { pod: values.pod }
          : undefined;
  if (sel === undefined) {
    io.err(DOCTOR_USAGE);
    return 2;
  }
  const cacheDir = values["cache-dir"] ?? io.env["CNI_CACHEDIR"] ?? "/var/lib/cni";
  const a = locate(cacheDir, sel);
  if (a === undefined) {
    io.err(
      `tcnp doctor: no CNI attachment for ${JSON.stringify(sel)} in ${cacheDir}/results (is this the node the pod runs on, and the runtime's cache dir?)\n`,
    );
    return 2;
  }
  const k = await kernel();
  const mode = modeOf(a);
  const ip = podIpOf(a);
  const recorded = recordsOf(a, values["state-dir"], io.env);
  const expect = recorded.flatMap((r) => r.expect ?? []);
  const pod = await snapshot(k, a.netns, snapshotNeeds(expect, a.netns));
  const host = await snapshot(k, HOST, snapshotNeeds(expect, HOST));
  let neutron: DoctorReport["neutron"];
  const ipam = ipamOf(a);
  if (values["no-cloud"] !== true && ip !== undefined && ipam !== undefined && isObject(ipam["openstackConf"])) {
    try {
      const creds = resolveCredentials(ipam["openstackConf"], fileSources(io.env));
      const stateDir = values["state-dir"] ?? stateDirOf({ raw: ipam }, io.env);
      const c = createClients({
        auth: creds.auth,
        clock: systemClock,
        tokens: new FileTokenStore(`${stateDir}/tokens`),
        lock: new FileLock(lockDirOf(io.env), systemClock),
        fetch: nodeFetch({
          timeoutMs: 10_000,
          ...(creds.caCert === undefined ? {} : { caCert: creds.caCert }),
          ...(creds.insecure === undefined ? {} : { insecure: creds.insecure }),
        }),
      });
      neutron = await neutronFacts(c, a, mode, ip, {
        stateDir,
        ...(values["route-limit"] === undefined ? {} : { routeLimit: Number(values["route-limit"]) }),
      });
    } catch (e) {
      neutron = { error: (e as Error).message };
    }
  }
  const findings = diagnose(
    a,
    recorded,
    new Map([
      [a.netns, pod],
      [HOST, host],
    ]),
    neutron,
  );
  // Only what concerns this pod, on the host side: its veths, routes, neighbours, chain.
  const vh = a.plugins.find((p) => p["type"] === "veth-host");
  const mine = new Set([
    hostVethName(a.containerId, a.ifname),
    ...(vh === undefined
      ? []
      : [
          hostVethName(
            a.containerId,
            typeof vh["containerInterface"] === "string" ? vh["containerInterface"] : "veth0",
          ),
        ]),
  ]);
  host.links = host.links.filter((l) => mine.has(l.name));
  const nat = host.iptables.nat;
  host.iptables =
    nat === undefined
      ? {}
      : {
          nat: new Map(
            [...nat].filter(
              ([chain]) =>
                chain ===
                podChainName(
                  a.network,
                  a.containerId,
                  typeof vh?.["containerInterface"] === "string" ? vh["containerInterface"] : "veth0",
                ),
            ),
          ),
        };
  host.routes = host.routes.filter((r) => ip !== undefined && r.dst === `${ip}/32`);
  host.proxies = host.proxies.filter((n) => n.ip === ip);
  host.neighbours = host.neighbours.filter((n) => n.ip === ip);
  host.addresses = [];
  host.rules = host.rules.filter((r) => r.priority !== 0 && r.priority < 32766);
  const agent = await agentView(io.env, a.containerId, a.ifname);
  if (agent?.inPool === true || agent?.cooling === true)
    findings.push({
      severity: "error",
      code: "agent-pool-holds-pod-address",
      message: `The node agent holds this pod's address ${ip ?? ""} ${agent.inPool === true ? "as free in its pool" : "as cooling"} too: another pod may be given it`,
      fix: "Recreate the pod, then restart the node agent (its upkeep rebuilds the pool from the ledger and Neutron's tags); report it: it is a tcnp bug",
    });
  for (const d of agent?.policy?.drift ?? [])
    findings.push({
      severity: "error",
      code: "policy-rules-differ",
      message: `This pod's NetworkPolicy rules in the kernel differ from what the policies say: ${d}`,
      fix: "Restart the node agent (it writes every pod's rules again at start); if it comes back, report it: it is a tcnp bug",
    });
  if (agent?.policy !== undefined && !agent.policy.known)
    findings.push({
      severity: "warning",
      code: "policy-labels-unknown",
      message:
        "The node agent does not know this pod's labels: the pod is isolated both ways (only its node reaches it)",
      fix: "Check that the agent reaches the API server and may list pods (kubectl auth can-i list pods --as=system:serviceaccount:tcnp-system:tcnp-node)",
    });
  const report: DoctorReport = {
    pod: attachmentSummary(a, mode, ip),
    kernel: { pod, host },
    ...(neutron === undefined ? {} : { neutron }),
    ...(agent === undefined ? {} : { agent }),
    findings,
    healthy: !findings.some((f) => f.severity === "error"),
  };
  io.out(values.json === true ? renderJson(report) : renderText(report));
  k.close();
  return report.healthy ? 0 : 1;
}

// What each tcnp plugin of the chain recorded at ADD: the state its plan expects.
function recordsOf(a: Attachment, stateDirFlag: string | undefined, env: Env): RecordedPlugin[] {
  return a.plugins
    .filter((p) => ATTACHMENT_PLUGINS.has(String(p["type"])))
    .map((p) => {
      const type = String(p["type"]);
      const dir = stateDirFlag ?? stateDirOf({ raw: p }, env);
      const records = new AttachmentRecords<AttachmentRecord>(dir, type, isAttachmentRecord);
      const rec = records.get(a.containerId, a.ifname);
      const file = records.fileOf(a.containerId, a.ifname);
      return rec === undefined ? { type, file } : { type, file, expect: rec.expect as Expectation[] };
    });
}

// The agent's view of the pod, when one runs on this node (its socket exists).
async function agentView(env: Env, containerId: string, ifname: string): Promise<AgentView | undefined> {
  const socket = env["TCNP_AGENT_SOCKET"] ?? DEFAULT_AGENT_SOCKET;
  if (!fs.existsSync(socket)) return undefined;
  const r = (await askAgent(socket, { op: "pod", containerId, ifname }, 5000).catch(() => undefined)) as
    | {
        views: Array<{ allocation?: Rec; inPool: boolean; cooling: boolean; pool: PoolView }>;
        policy?: PolicyReport | null;
      }
    | undefined;
  if (r === undefined) return { socket, answering: false };
  const v = r.views[0];
  const policy = r.policy === undefined || r.policy === null ? {} : { policy: r.policy };
  if (v?.allocation === undefined) return { socket, answering: true, ...policy };
  const out: AgentView = {
    socket,
    answering: true,
    ...policy,
    allocation: {
      state:
        v.allocation.kind === "intent"
          ? `pending ${v.allocation.op}`
          : v.allocation.kind === "pod"
            ? "active"
            : v.allocation.kind,
      createdAt: v.allocation.createdAt,
      ...(v.allocation.ip === undefined ? {} : { ip: v.allocation.ip }),
      ...(v.allocation.portId === undefined ? {} : { port: v.allocation.portId }),
    },
    inPool: v.inPool,
    cooling: v.cooling,
    pool: {
      free: v.pool.free.length,
      inUse: v.pool.inUse,
      cooling: v.pool.cooling,
      ...(v.pool.cloudError === undefined ? {} : { cloudError: v.pool.cloudError }),
    },
  };
  return out;
}
