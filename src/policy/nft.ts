// A pod's NetworkPolicy as nftables scripts (pure text; the kernel adapter runs them with `nft -f`).
// Each script is one nft transaction, so a pod's rules change atomically.
//
// On the node (the VM), table inet tcnp_policy: a forward hook that lets replies through (conntrack),
// then jumps by input interface to the sending pod's egress chain and by output interface to the
// receiving pod's ingress chain. Forward runs after kube-proxy's DNAT, so Service traffic is judged on
// the real endpoint. Node-to-pod and pod-to-node traffic never crosses forward: it passes, as
// Kubernetes requires. A chain returns for an allowed packet and ends in a counted drop when the pod
// is isolated in that direction (empty when not).
//
// eni pods own their NIC: their table lives in the pod's namespace (input and output hooks), which a
// pod without NET_ADMIN cannot change. What leaves by the pod's veth to the node (Services) is judged
// on the node, after DNAT, by the same egress chain on that veth's host side.
import type { AddrMatch, Clause, Direction, PortMatch } from "./compute.js";

export const TABLE = "tcnp_policy";
const T = `inet ${TABLE}`;
/** Runs before the filter tables of iptables-nft (priority 0), after DNAT (-100). */
const PRIORITY = -5;

const family = (a: string): "ip" | "ip6" => (a.includes(":") ? "ip6" : "ip");

// Rendered address lists, per list (the computation shares one list among the pods it selects for).
const rendered = new WeakMap<string[], Map<string, string[]>>();

function addrParts(p: AddrMatch | undefined, key: "saddr" | "daddr"): string[] {
  if (p === undefined) return [""];
  if ("ips" in p) {
    let byKey = rendered.get(p.ips);
    if (byKey === undefined) rendered.set(p.ips, (byKey = new Map()));
    const hit = byKey.get(key);
    if (hit !== undefined) return hit;
    const out: string[] = [];
    for (const f of ["ip", "ip6"] as const) {
      const ips = [...new Set(p.ips.filter((a) => family(a) === f))].sort();
      if (ips.length > 0) out.push(`${f} ${key} { ${ips.join(", ")} }`);
    }
    byKey.set(key, out);
    return out;
  }
  const f = family(p.cidr);
  const except = p.except.filter((e) => family(e) === f);
  return [`${f} ${key} ${p.cidr}${except.length === 0 ? "" : ` ${f} ${key} != { ${except.join(", ")} }`}`];
}

function portParts(ports: readonly PortMatch[] | undefined): string[] {
  if (ports === undefined) return [""];
  const out: string[] = [];
  for (const proto of ["tcp", "udp", "sctp"] as const) {
    const mine = ports.filter((p) => p.protocol === proto);
    if (mine.length === 0) continue;
    if (mine.some((p) => p.first === undefined)) {
      out.push(`meta l4proto ${proto}`);
      continue;
    }
    const items = [...new Set(mine.map((p) => (p.first === p.last ? `${p.first}` : `${p.first}-${p.last}`)))];
    out.push(`meta l4proto ${proto} th dport { ${items.join(", ")} }`);
  }
  return out;
}

/** The rules of one direction's chain, in order. */
export function chainRules(d: Direction, dir: "ingress" | "egress"): string[] {
  if (d.policies.length === 0) return [];
  const key = dir === "ingress" ? "saddr" : "daddr";
  const rules = new Set<string>();
  for (const c of d.clauses as readonly Clause[])
    for (const a of addrParts(c.peers, key))
      for (const p of portParts(c.ports)) rules.add(`${[a, p].filter((s) => s !== "").join(" ")} return`.trim());
  return [...rules, "counter drop"];
}

/** The node's table, its maps and its forward hook (replaced whole: at the agent's start). */
export function hostBase(): string {
  return [
    `add table ${T}`,
    `add map ${T} ingress { type ifname : verdict; }`,
    `add map ${T} egress { type ifname : verdict; }`,
    `add chain ${T} forward { type filter hook forward priority ${PRIORITY}; policy accept; }`,
    `flush chain ${T} forward`,
    `add rule ${T} forward ct state established,related accept`,
    `add rule ${T} forward iifname vmap @egress`,
    `add rule ${T} forward oifname vmap @ingress`,
    "",
  ].join("\n");
}

const chainOf = (veth: string, dir: "ingress" | "egress"): string => `${veth}-${dir === "ingress" ? "in" : "out"}`;

/** A pod's chains on the node, for its host veth: the directions given are replaced, the others removed. */
export function hostPodScript(veth: string, dirs: { ingress?: string[]; egress?: string[] }): string {
  const lines: string[] = [];
  for (const dir of ["ingress", "egress"] as const) {
    const chain = chainOf(veth, dir);
    const rules = dirs[dir];
    lines.push(`add chain ${T} ${chain}`, `flush chain ${T} ${chain}`);
    lines.push(`add element ${T} ${dir} { "${veth}" : jump ${chain} }`);
    if (rules === undefined) lines.push(`delete element ${T} ${dir} { "${veth}" }`, `delete chain ${T} ${chain}`);
    else for (const r of rules) lines.push(`add rule ${T} ${chain} ${r}`);
  }
  return lines.join("\n") + "\n";
}

/** Removes a pod's chains from the node's table (whether or not they exist). */
export function hostPodRemoval(veth: string): string {
  return hostPodScript(veth, {});
}

/** The table inside an eni pod's namespace: replaced whole, in one transaction. */
export function podNetnsScript(o: {
  ingress: string[];
  egress: string[];
  /** The pod's veth to the node: egress by it is judged on the node; ingress from the node passes. */
  nodeVeth?: string;
  nodeAddresses: readonly string[];
}): string {
  const node: string[] = [];
  for (const f of ["ip", "ip6"] as const) {
    const ips = o.nodeAddresses.filter((a) => family(a) === f);
    if (ips.length > 0) node.push(`${f} saddr { ${ips.join(", ")} } accept`);
  }
  const veth = o.nodeVeth === undefined ? [] : [`oifname "${o.nodeVeth}" accept`];
  const block = (name: string, head: string[], rules: string[]): string =>
    [`  chain ${name} {`, ...head.map((h) => `    ${h}`), ...rules.map((r) => `    ${r}`), "  }"].join("\n");
  return [
    `add table ${T}`,
    `delete table ${T}`,
    `table ${T} {`,
    block("pod_in", [], o.ingress),
    block("pod_out", [], o.egress),
    block(
      "input",
      [
        `type filter hook input priority ${PRIORITY}; policy accept;`,
        "ct state established,related accept",
        `iifname "lo" accept`,
        ...node,
      ],
      ["jump pod_in"],
    ),
    block(
      "output",
      [
        `type filter hook output priority ${PRIORITY}; policy accept;`,
        "ct state established,related accept",
        `oifname "lo" accept`,
        ...veth,
      ],
      ["jump pod_out"],
    ),
    "}",
    "",
  ].join("\n");
}
