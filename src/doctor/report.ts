// The doctor's output: the seed's manual diagnosis (interfaces, addresses, routes, rules, tables, in
// the pod and on the host), what Neutron holds, and the findings — as text or JSON.
import type { Finding, Mode, NeutronFacts } from "./findings.js";
import type { Snapshot } from "../kernel/snapshot.js";
import type { Attachment } from "./locate.js";

export interface AgentView {
  socket: string;
  answering: boolean;
  /** The pod's allocation as the agent's pool sees it. */
  allocation?: { state: string; ip?: string; port?: string; createdAt: number };
  /** The pod's address is also free in the pool, or cooling: another pod could be given it. */
  inPool?: boolean;
  cooling?: boolean;
  pool?: { free: number; inUse: number; cooling: number; cloudError?: string };
  /** NetworkPolicy, when the agent enforces it: what selects the pod, its rules, the kernel's copy. */
  policy?: PolicyReport;
}

export interface PolicyReport {
  known: boolean;
  ingress: { policies: string[]; rules: string[] };
  egress: { policies: string[]; rules: string[] };
  kernel: Partial<Record<"ingress" | "egress", { rules: number; drops: number }>> | { error: string };
  drift: string[];
}

export interface DoctorReport {
  pod: {
    namespace?: string;
    name?: string;
    containerId: string;
    ifname: string;
    netns: string;
    network: string;
    ip?: string;
    mode: Mode;
    chain: string[];
  };
  kernel: { pod: Snapshot; host: Snapshot };
  neutron?: NeutronFacts;
  /** The node agent's view of the pod, when an agent answers on this node. */
  agent?: AgentView;
  findings: Finding[];
  healthy: boolean;
}

function side(title: string, s: Snapshot, lines: string[]): void {
  lines.push(title);
  if (!s.exists) {
    lines.push("  (the namespace does not exist)");
    return;
  }
  for (const l of s.links)
    lines.push(
      `  link ${l.name} ${l.kind} ${l.mac} mtu ${l.mtu} ${l.up ? "UP" : "DOWN"}${l.alias === undefined ? "" : ` alias ${l.alias}`}`,
    );
  for (const a of s.addresses.filter((x) => !x.cidr.includes(":")))
    lines.push(`  addr ${a.dev} ${a.cidr}${a.noprefixroute === true ? " noprefixroute" : ""}`);
  for (const r of s.routes.filter((x) => !x.dst.includes(":"))) {
    lines.push(
      `  route ${r.dst === "0.0.0.0/0" ? "default" : r.dst}${r.gw === undefined ? "" : ` via ${r.gw}`}${r.dev === undefined ? "" : ` dev ${r.dev}`}${r.scope === "link" ? " scope link" : ""}${r.src === undefined ? "" : ` src ${r.src}`}${(r.table ?? 254) === 254 ? "" : ` table ${r.table}`}${r.onlink === true ? " onlink" : ""}`,
    );
  }
  for (const r of s.rules)
    lines.push(
      `  rule ${r.priority}: ${r.iif === undefined ? "" : `iif ${r.iif} `}${r.src === undefined ? "" : `from ${r.src} `}${r.fwmark === undefined ? "" : `fwmark 0x${r.fwmark.toString(16)}/0x${(r.fwmask ?? 0xffffffff).toString(16)} `}lookup ${r.table}`,
    );
  for (const n of s.neighbours) lines.push(`  neigh ${n.ip} dev ${n.dev} lladdr ${n.mac ?? "-"} PERMANENT`);
  for (const n of s.proxies) lines.push(`  neigh proxy ${n.ip} dev ${n.dev}`);
  for (const [chain, rules] of s.iptables.nat ?? new Map())
    if (chain.startsWith("TCNP-")) lines.push(`  iptables nat ${chain}: ${rules.join(" | ")}`);
}

export function renderText(r: DoctorReport): string {
  const p = r.pod;
  const lines = [
    `pod ${p.namespace === undefined ? "" : `${p.namespace}/${p.name} `}(container ${p.containerId}, ${p.ifname}) on network "${p.network}", mode ${p.mode} (${p.chain.join(" → ")})`,
    `address ${p.ip ?? "(none)"}, namespace ${p.netns}`,
    "",
  ];
  side("in the pod:", r.kernel.pod, lines);
  lines.push("");
  side("on the host (this VM), what concerns the pod:", r.kernel.host, lines);
  if (r.neutron !== undefined) {
    const n = r.neutron;
    lines.push("", "in Neutron:");
    if (n.error !== undefined) lines.push(`  cannot ask Neutron: ${n.error}`);
    if (n.port !== undefined) lines.push(`  port ${n.port.id} (${n.port.mac}) holds ${n.port.ips.join(", ")}`);
    if (n.nodeIp !== undefined) lines.push(`  the VM's own address (next hop): ${n.nodeIp}`);
    if (n.subnet !== undefined)
      lines.push(`  subnet ${n.subnet.id} ${n.subnet.cidr} dhcp=${n.subnet.enableDhcp} on-router=${n.subnet.onRouter}`);
    if (n.router !== undefined)
      lines.push(
        `  router ${n.router.name}: ${n.router.routes.length} of ${n.router.limit} routes${
          n.router.routes.length === 0
            ? ""
            : `: ${n.router.routes
                .slice(0, 8)
                .map((x) => `${x.destination} via ${x.nexthop}`)
                .join(", ")}${n.router.routes.length > 8 ? ", …" : ""}`
        }`,
      );
  }
  if (r.agent !== undefined) {
    const g = r.agent;
    lines.push("", `the node agent (${g.socket}):`);
    if (!g.answering) lines.push("  not answering: the plugins do the work themselves");
    else if (g.allocation === undefined) lines.push("  no allocation of this pod in its pools");
    else
      lines.push(
        `  allocation ${g.allocation.state} ${g.allocation.ip ?? "-"} on port ${g.allocation.port ?? "-"}${g.inPool === true ? "; ALSO FREE IN THE POOL" : ""}${g.cooling === true ? "; ALSO COOLING" : ""}`,
      );
    if (g.pool !== undefined)
      lines.push(
        `  pool: ${g.pool.free} free, ${g.pool.inUse} in use, ${g.pool.cooling} cooling${g.pool.cloudError === undefined ? "" : `; cloud failing: ${g.pool.cloudError}`}`,
      );
  }
  const pol = r.agent?.policy;
  if (pol !== undefined) {
    lines.push("", "NetworkPolicy (the node agent):");
    if (!pol.known) lines.push("  the agent does not know this pod's labels: isolated both ways until it does");
    for (const dir of ["ingress", "egress"] as const) {
      const d = pol[dir];
      const k = "error" in pol.kernel ? undefined : pol.kernel[dir];
      if (d.policies.length === 0) {
        lines.push(`  ${dir}: not isolated (no policy selects the pod for ${dir}): everything passes`);
        continue;
      }
      lines.push(
        `  ${dir}: selected by ${d.policies.join(", ")}; ${k === undefined ? "" : `${k.drops} packets dropped so far; `}allows:`,
      );
      const allows = d.rules.filter((x) => x !== "counter drop");
      if (allows.length === 0) lines.push("    nothing (but its node)");
      for (const x of allows) lines.push(`    ${x.replace(/ return$/, "") || "everything"}`);
    }
  }
  lines.push("", "findings:");
  if (r.findings.length === 0) lines.push("  ✓ healthy: everything the plugins planned is in place");
  for (const f of r.findings) {
    lines.push(`  ${f.severity === "error" ? "✗" : "!"} [${f.code}] ${f.message}`);
    lines.push(`    → what to do: ${f.fix}`);
  }
  if (r.findings.length > 0 && r.healthy) lines.push("  ✓ healthy: no fault (only warnings)");
  return `${lines.join("\n")}\n`;
}

export function renderJson(r: DoctorReport): string {
  const mapReplacer = (_k: string, v: unknown): unknown => (v instanceof Map ? Object.fromEntries(v) : v);
  return `${JSON.stringify(r, mapReplacer, 2)}\n`;
}

export const attachmentSummary = (a: Attachment, mode: Mode, ip: string | undefined): DoctorReport["pod"] => ({
  ...(a.podNamespace === undefined ? {} : { namespace: a.podNamespace }),
  ...(a.podName === undefined ? {} : { name: a.podName }),
  containerId: a.containerId,
  ifname: a.ifname,
  netns: a.netns,
  network: a.network,
  ...(ip === undefined ? {} : { ip }),
  mode,
  chain: a.plugins.map((x) => String(x["type"])),
});
