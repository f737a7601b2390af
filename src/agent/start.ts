// The node agent put together: its socket, the node lock it holds for as long as it runs (it is the
// node's one ledger writer), the pools of the conf dir's configurations and their upkeep.
import { systemClock } from "../base/clock.js";
import { parseNetConf } from "../cni/netconf.js";
import { serveControllerHttp } from "../controller/http.js";
import { Kube, type KubeAccess } from "../controller/kube.js";
import { Metrics } from "../controller/metrics.js";
import { NODE_LOCK, ResidentWriter } from "../ipam/node.js";
import type { Logger } from "../log/logger.js";
import { FileIntentLocks, FileLock } from "../state/lock.js";
import { lockDirOf } from "../state/records.js";
import { VERSION } from "../version.js";
import * as path from "node:path";
import { nftApply, nftListTable } from "../kernel/nft.js";
import { PolicyEngine } from "./policy.js";
import { ENFORCING } from "./policy-node.js";
import * as fs from "node:fs";
import { InstalledConfs } from "./installed.js";
import { NodeLifecycle } from "./node.js";
import { poolEvents, poolGauges } from "./metrics.js";
import { AgentRequests, type AgentWiring } from "./requests.js";
import { serveAgentSocket, type AgentSocket } from "./server.js";

export interface AgentStatus {
  pid: number;
  version: string;
  uptimeS: number;
  inFlight: number;
  pools: ReturnType<ResidentWriter["views"]>;
}

export interface RunningAgent {
  writer: ResidentWriter;
  /** Where /healthz, /readyz and /metrics are served (with `listen`). */
  address?: string;
  /** Every pool of an installed configuration holds its minimum (its warm target without one). */
  ready(): boolean;
  metrics: Metrics;
  status(): AgentStatus;
  stop(): Promise<void>;
}

/**
 * Start serving: the socket first (requests wait in the agent), then the node lock (a plugin
 * process serving a pod without the agent finishes first), then the pools.
 */
export async function startAgent(opts: {
  socket: string;
  env: Record<string, string | undefined>;
  log: Logger;
  /** The directories of the network configurations the agent serves (the runtime's conf dir). */
  confDirs: readonly string[];
  wiring: AgentWiring;
  /** HOST:PORT or unix:PATH for /healthz, /readyz and /metrics. */
  listen?: string;
  /** The Kubernetes Node this agent keeps (taint, capacity). */
  node?: { name: string; access: KubeAccess };
  /** Enforce NetworkPolicy for the node's pods (default: with a node). */
  networkPolicy?: boolean;
}): Promise<RunningAgent> {
  const { log } = opts;
  const { NetlinkKernel } = await import("../kernel/netlink-kernel.js");
  const kernel = await NetlinkKernel.create({ longLived: true });
  const metrics = new Metrics();
  const startedAt = Date.now();
  // The writer serves the requests, and its pools use the requests' shared connections: made after.
  const late: { writer?: ResidentWriter; sock?: AgentSocket } = {};
  const installed = new InstalledConfs(opts.confDirs);
  const requests: AgentRequests = new AgentRequests({
    installed,
    kernel,
    log,
    metrics,
    env: opts.env,
    wiring: opts.wiring,
    writer: { withPool: (s, fn) => late.writer!.withPool(s, fn) },
  });
  const writer = (late.writer = new ResidentWriter(
    requests.deps(opts.env, log.child({ part: "pools" })),
    new FileIntentLocks(lockDirOf(opts.env)),
    { events: poolEvents(metrics) },
  ));

  const kube =
    opts.node === undefined
      ? undefined
      : new Kube(
          opts.wiring.fetch({
            timeoutMs: 10_000,
            ...(opts.node.access.caCert === undefined ? {} : { caCert: opts.node.access.caCert }),
          }),
          opts.node.access,
        );
  // NetworkPolicy before the first request: no pod is served without its rules.
  let policy: PolicyEngine | undefined;
  if (opts.node !== undefined && kube !== undefined && opts.networkPolicy !== false) {
    policy = new PolicyEngine({
      access: opts.node.access,
      kube,
      log: log.child({ part: "policy" }),
      metrics,
      dir: path.join(path.dirname(lockDirOf(opts.env)), "policy"),
      nft: nftApply,
      list: (netns) => nftListTable("inet", "tcnp_policy", netns),
    });
    await policy.start();
    requests.enforcePolicy(policy);
  } else {
    // Not enforcing: plugin processes serving pods without the agent must not isolate them.
    fs.rmSync(path.join(path.dirname(lockDirOf(opts.env)), "policy", ENFORCING), { force: true });
  }
  let holding: (v: void) => void = () => {};
  const held = new Promise<void>((r) => (holding = r));
  const status = (): AgentStatus => ({
    pid: process.pid,
    version: VERSION,
    uptimeS: Math.round((Date.now() - startedAt) / 1000),
    inFlight: late.sock?.inFlight() ?? 0,
    pools: writer.views(),
  });
  const sock = (late.sock = await serveAgentSocket(
    opts.socket,
    {
      cni: async (req) => {
        await held;
        return requests.cni(req);
      },
      pod: async (c: string, i: string) => ({
        pid: process.pid,
        views: writer.podView({ containerId: c, ifname: i }),
        ...(policy === undefined ? {} : { policy: (await policy.view(c)) ?? null }),
      }),
      status,
    },
    log,
  ));
  // The node lock, once no plugin process is in the middle of a pod's attach without it (it holds
  // that intent's lock, and needs the node lock once more to record what it made).
  const nodeLock = new FileLock(lockDirOf(opts.env), systemClock);
  const intents = new FileIntentLocks(lockDirOf(opts.env));
  let release: () => void;
  for (;;) {
    release = await nodeLock.acquire(NODE_LOCK, {
      waiting: (ms) =>
        log.info("waiting for the node lock (a plugin process is serving a pod without the agent)", { ms }),
    });
    if (!intents.anyHeldElsewhere()) break;
    release();
    await systemClock.sleep(50);
  }
  holding();
  const gauge = setInterval(() => poolGauges(metrics, writer.views()), 1000);
  const drops = policy === undefined ? undefined : setInterval(() => void policy.countDrops(), 10_000);
  drops?.unref();
  gauge.unref();
  writer.start();
  // The pools of the configurations installed now (made for one installed since): a pool of one
  // removed from the conf dir no longer counts for readiness.
  let known: { version: string; keys: Set<string> } | undefined;
  const installedPools = (): Set<string> => {
    if (known?.version === installed.version()) return known.keys;
    const keys = new Set<string>();
    for (const conf of installed.ipamConfs()) {
      try {
        keys.add(writer.poolFor(parseNetConf(JSON.stringify(conf), "ADD")).key);
      } catch (e) {
        log.warn("cannot pool for a configuration in the conf dir", { error: e });
      }
    }
    known = { version: installed.version(), keys };
    return keys;
  };
  installedPools();
  log.info("agent started", { socket: opts.socket, pools: writer.views().length });
  const ready = (): boolean => writer.ready(installedPools());
  const http =
    opts.listen === undefined
      ? undefined
      : await serveControllerHttp(opts.listen, metrics, {
          healthy: () => ({ ok: true, detail: "ok" }),
          ready: () => {
            const ok = ready();
            return { ok, detail: ok ? "pools warm" : "pools not at their minimum yet" };
          },
        });
  let lifecycle: NodeLifecycle | undefined;
  if (opts.node !== undefined && kube !== undefined) {
    lifecycle = new NodeLifecycle({
      kube,
      nodeName: opts.node.name,
      log,
      pools: () => ({ ready: ready(), views: writer.views() }),
    });
    await lifecycle.start();
  }
  return {
    writer,
    ready,
    ...(http === undefined ? {} : { address: http.address }),
    metrics,
    status,
    stop: async () => {
      lifecycle?.stop();
      policy?.stop();
      clearInterval(gauge);
      if (drops !== undefined) clearInterval(drops);
      // Requests in flight are answered first (they may wait on a fill), then the pools' cloud work ends.
      await sock?.close();
      if (!(await writer.stop()))
        log.warn("agent stopping with cloud work still in flight; the next writer finishes it", {});
      release();
      kernel.close();
      await http?.close();
      log.info("agent stopped");
    },
  };
}
