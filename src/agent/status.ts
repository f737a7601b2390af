// `tcnp agent status`: the agent's answer in words.
import type { AgentStatus } from "./start.js";

export function statusText(s: AgentStatus, now = Date.now()): string {
  const lines = [`tcnp agent ${s.version}, pid ${s.pid}, up ${s.uptimeS} s, ${s.inFlight} request(s) in flight`];
  if (s.pools.length === 0) lines.push("no pools yet (none configured in the conf dir, no request served)");
  for (const p of s.pools) {
    lines.push(
      `${p.mode} pool ${p.networks.join(",")}${p.port === undefined ? "" : ` on port ${p.port}`}: ${p.free.length} free, ${p.inUse} in use, ${p.cooling} cooling, ${p.pendingReleases} pending cloud work; targets warm ${p.targets.warm} minimum ${p.targets.minimum} maximum ${p.targets.maximum}; ${p.ready ? "ready" : "not ready"}`,
    );
    if (p.free.length > 0) lines.push(`  free: ${p.free.join(" ")}`);
    if (p.cloudError !== undefined)
      lines.push(
        `  cloud failing: ${p.cloudError}${p.backoffUntil === undefined ? "" : ` (next try in ${Math.ceil((p.backoffUntil - now) / 1000)} s)`}`,
      );
  }
  return `${lines.join("\n")}\n`;
}
