// The node agent put together: its socket, the node lock it holds for as long as it runs (it is the
// node's one ledger writer), the pools of the conf dir's configurations and their upkeep.
import * as fs from "node:fs";
import * as path from "node:path";
import { systemClock } from "../base/clock.js";
import { isObject, parseNetConf } from "../cni/netconf.js";
import { Metrics } from "../controller/metrics.js";
import { NODE_LOCK, ResidentWriter } from "../ipam/node.js";
import type { Logger } from "../log/logger.js";
import { FileIntentLocks, FileLock } from "../state/lock.js";
import { lockDirOf } from "../state/records.js";
import { VERSION } from "../version.js";
import { poolEvents, poolGauges } from "./metrics.js";
import { AgentRequests, type AgentWiring } from "./requests.js";
import { serveAgentSocket, type AgentSocket } from "./server.js";

// The tcnp-ipam configurations in a conf dir, as the network configurations a plugin would see.
export function confsIn(dir: string): string[] {
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

export interface AgentStatus {
  pid: number;
  version: string;
  uptimeS: number;
  inFlight: number;
  pools: ReturnType<ResidentWriter["views"]>;
}

export interface RunningAgent {
  writer: ResidentWriter;
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
  confDir: string;
  wiring: AgentWiring;
}): Promise<RunningAgent> {
  const { log } = opts;
  const { NetlinkKernel } = await import("../kernel/netlink-kernel.js");
  const kernel = await NetlinkKernel.create({ longLived: true });
  const metrics = new Metrics();
  const startedAt = Date.now();
  // The writer serves the requests, and its pools use the requests' shared connections: made after.
  const late: { writer?: ResidentWriter; sock?: AgentSocket } = {};
  const requests: AgentRequests = new AgentRequests({
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
      pod: (c: string, i: string) => ({ pid: process.pid, views: writer.podView({ containerId: c, ifname: i }) }),
      status,
    },
    log,
  ));
  const release = await new FileLock(lockDirOf(opts.env), systemClock).acquire(NODE_LOCK, {
    waiting: (ms) =>
      log.info("waiting for the node lock (a plugin process is serving a pod without the agent)", { ms }),
  });
  holding();
  const gauge = setInterval(() => poolGauges(metrics, writer.views()), 1000);
  gauge.unref();
  writer.start();
  for (const conf of confsIn(opts.confDir)) {
    try {
      writer.poolFor(parseNetConf(conf, "ADD"));
    } catch (e) {
      log.warn("cannot pool for a configuration in the conf dir", { error: e });
    }
  }
  log.info("agent started", { socket: opts.socket, pools: writer.views().length });
  return {
    writer,
    metrics,
    status,
    stop: async () => {
      clearInterval(gauge);
      // Requests in flight are answered first (they may wait on a fill), then the pools' cloud work ends.
      await sock?.close();
      if (!(await writer.stop()))
        log.warn("agent stopping with cloud work still in flight; the next writer finishes it", {});
      release();
      kernel.close();
      log.info("agent stopped");
    },
  };
}
