// The agent's metrics: requests served, their latency, its cloud calls, its pools.
import type { Metrics } from "../controller/metrics.js";
import type { PoolEvents, PoolView } from "../ipam/pool/pool.js";

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const VERBS = new Set(["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"]);

/** One plugin request served (a command that is no CNI verb is counted as "other": labels stay few). */
export function countRequest(m: Metrics, r: { plugin: string; command: string; ok: boolean; seconds: number }): void {
  m.inc("tcnp_agent_requests_total", "Plugin requests served by the agent", {
    plugin: r.plugin,
    command: VERBS.has(r.command) ? r.command : "other",
    outcome: r.ok ? "ok" : "error",
  });
  if (r.command === "ADD" || r.command === "DEL")
    m.observe("tcnp_agent_request_duration_seconds", "ADD and DEL latency in the agent", r.seconds, LATENCY_BUCKETS, {
      plugin: r.plugin,
      command: r.command,
    });
}

export const poolEvents = (m: Metrics): PoolEvents => ({
  cloudCall: (kind, ok) =>
    m.inc("tcnp_agent_pool_cloud_work_total", "Pool cloud work by kind and outcome", {
      kind,
      outcome: ok ? "ok" : "error",
    }),
});

export function poolGauges(m: Metrics, views: readonly PoolView[]): void {
  for (const v of views) {
    const l = { networks: v.networks.join(","), mode: v.mode };
    m.set("tcnp_agent_pool_free", "Free addresses in the warm pool", v.free.length, l);
    m.set("tcnp_agent_pool_in_use", "Pool addresses held by pods", v.inUse, l);
    m.set("tcnp_agent_pool_cooling", "Released addresses cooling down", v.cooling, l);
    m.set("tcnp_agent_pool_pending", "Pending cloud work (intents)", v.pendingReleases, l);
  }
}
