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
//
// An eni pod's Service traffic to a pod on another node leaves its node masqueraded (the VM's port
// accepts only the node's addresses, and replies must come back through the node to be un-DNATed):
// the server sees the client's node, not the client. So the client's node judges it against the
// server's ingress too (its `svc` chain, after the client's egress) and marks what passes with a DSCP
// code point of local use; a node accepts a new connection from another node's address only with
// that mark. Nodes clear the mark on everything else they send or forward, so neither a pod nor a
// host process can forge it; the cloud must carry DSCP unchanged (Neutron does unless a QoS DSCP
// marking rule is set on the VMs' ports).
import type { AddrMatch, Clause, Direction, PortMatch, SourceJudgement } from "./compute.js";

export const TABLE = "tcnp_policy";
const T = `inet ${TABLE}`;
/** Runs before the filter tables of iptables-nft (priority 0), after DNAT (-100). */
const PRIORITY = -5;

const family = (a: string): "ip" | "ip6" => (a.includes(":") ? "ip6" : "ip");

/**
 * Names a shared set for a list of peer addresses of one family ("@name"); without one, lists are
 * written inline. The node's table shares one named set among every chain that names the same
 * addresses, so a pod's chains name sets that usually exist already (src/agent/policy-sets.ts).
 */
export type SetNamer = (f: "ip" | "ip6", ips: readonly string[]) => string;

// A peer list's addresses by family, sorted and without repeats: once per list (the computation
// shares one list among the pods it selects for), so a namer sees the same arrays again.
const byFamily = new WeakMap<string[], Array<["ip" | "ip6", string[]]>>();
// Rendered inline address lists, per list and key.
const rendered = new WeakMap<string[], Map<string, string[]>>();

function families(list: string[]): Array<["ip" | "ip6", string[]]> {
  let out = byFamily.get(list);
  if (out !== undefined) return out;
  out = [];
  for (const f of ["ip", "ip6"] as const) {
    const ips = [...new Set(list.filter((a) => family(a) === f))].sort();
    if (ips.length > 0) out.push([f, ips]);
  }
  byFamily.set(list, out);
  return out;
}

function addrParts(p: AddrMatch | undefined, key: "saddr" | "daddr", named?: SetNamer): string[] {
  if (p === undefined) return [""];
  if ("ips" in p) {
    if (named !== undefined) return families(p.ips).map(([f, ips]) => `${f} ${key} ${named(f, ips)}`);
    let byKey = rendered.get(p.ips);
    if (byKey === undefined) rendered.set(p.ips, (byKey = new Map()));
    let out = byKey.get(key);
    if (out === undefined)
      byKey.set(key, (out = families(p.ips).map(([f, ips]) => `${f} ${key} { ${ips.join(", ")} }`)));
    return out;
  }
  // Exceptions as one `!=` each, not as a set: nft would make an anonymous interval set of them, and
  // nft 1.0 reads every such set's elements back from the kernel before each transaction on the
  // table (a pod's ADD would pay for every other pod's rules).
  const f = family(p.cidr);
  const except = p.except.filter((e) => family(e) === f);
  return [[`${f} ${key} ${p.cidr}`, ...except.map((e) => `${f} ${key} != ${e}`)].join(" ")];
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
    // Single ports share one set (a plain anonymous set); each range is a part of its own (no
    // anonymous interval sets: see addrParts).
    const single = [...new Set(mine.filter((p) => p.first === p.last).map((p) => p.first!))].sort((a, b) => a - b);
    if (single.length === 1) out.push(`meta l4proto ${proto} th dport ${single[0]}`);
    if (single.length > 1) out.push(`meta l4proto ${proto} th dport { ${single.join(", ")} }`);
    for (const r of new Set(mine.filter((p) => p.first !== p.last).map((p) => `${p.first}-${p.last}`)))
      out.push(`meta l4proto ${proto} th dport ${r}`);
  }
  return out;
}

/** The DSCP code point (pool 2, local use) of Service traffic judged at its source node. */
export const JUDGED_DSCP = 0x0b;

/** The `svc` chain of an eni pod's host veth: remote servers' ingress, judged at the source. */
export function judgedRules(j: SourceJudgement): string[] {
  if (j.isolated.length === 0) return [];
  const rules = new Set<string>();
  const mark = (f: "ip" | "ip6"): string => `${f} dscp set ${JUDGED_DSCP}`;
  for (const a of j.allowed)
    for (const f of ["ip", "ip6"] as const) {
      const ips = [...new Set(a.ips.filter((x) => family(x) === f))].sort();
      if (ips.length === 0) continue;
      for (const p of portParts(a.ports))
        rules.add([`${f} daddr { ${ips.join(", ")} }`, p, mark(f), "return"].filter((x) => x !== "").join(" "));
    }
  const out = [...rules];
  for (const f of ["ip", "ip6"] as const) {
    const ips = [...new Set(j.isolated.filter((x) => family(x) === f))].sort();
    if (ips.length > 0) out.push(`${f} daddr { ${ips.join(", ")} } counter drop`);
  }
  return out;
}

/** The rules of one direction's chain, in order. */
export function chainRules(d: Direction, dir: "ingress" | "egress", named?: SetNamer): string[] {
  if (d.policies.length === 0) return [];
  const key = dir === "ingress" ? "saddr" : "daddr";
  const rules = new Set<string>();
  for (const c of d.clauses as readonly Clause[])
    for (const a of addrParts(c.peers, key, named))
      for (const p of portParts(c.ports)) rules.add(`${[a, p].filter((s) => s !== "").join(" ")} return`.trim());
  return [...rules, "counter drop"];
}

const dscpOf = (f: "ip" | "ip6"): string => `${f} dscp ${JUDGED_DSCP}`;

/**
 * The node's table, its maps and sets, its forward and output hooks (the hooks' rules replaced: at
 * the agent's start). `pods`: every local pod's host veth; `nodes`: the cluster's node addresses.
 */
export function hostBase(): string {
  return [
    `add table ${T}`,
    `add map ${T} ingress { type ifname : verdict; }`,
    `add map ${T} egress { type ifname : verdict; }`,
    `add map ${T} svc { type ifname : verdict; }`,
    `add set ${T} pods { type ifname; }`,
    `add set ${T} nodes { type ipv4_addr; }`,
    `add set ${T} nodes6 { type ipv6_addr; }`,
    `add chain ${T} forward { type filter hook forward priority ${PRIORITY}; policy accept; }`,
    `flush chain ${T} forward`,
    `add rule ${T} forward ct state established,related accept`,
    // The mark comes only from this node's judgement (svc) or from another node's.
    `add rule ${T} forward iifname @pods ${dscpOf("ip")} ip dscp set 0`,
    `add rule ${T} forward iifname @pods ${dscpOf("ip6")} ip6 dscp set 0`,
    `add rule ${T} forward iifname != @pods ip saddr @nodes ${dscpOf("ip")} accept`,
    `add rule ${T} forward iifname != @pods ip6 saddr @nodes6 ${dscpOf("ip6")} accept`,
    `add rule ${T} forward iifname vmap @egress`,
    `add rule ${T} forward iifname vmap @svc`,
    `add rule ${T} forward oifname vmap @ingress`,
    `add chain ${T} output { type filter hook output priority ${PRIORITY}; policy accept; }`,
    `flush chain ${T} output`,
    `add rule ${T} output ${dscpOf("ip")} ip dscp set 0`,
    `add rule ${T} output ${dscpOf("ip6")} ip6 dscp set 0`,
    "",
  ].join("\n");
}

/** The cluster's node addresses in the node's table (replaced whole). */
export function hostNodesScript(nodes: readonly string[]): string {
  const lines = [`flush set ${T} nodes`, `flush set ${T} nodes6`];
  for (const [set, f] of [
    ["nodes", "ip"],
    ["nodes6", "ip6"],
  ] as const) {
    const ips = [...new Set(nodes.filter((a) => family(a) === f))].sort();
    if (ips.length > 0) lines.push(`add element ${T} ${set} { ${ips.join(", ")} }`);
  }
  return lines.join("\n") + "\n";
}

type HostDir = "ingress" | "egress" | "svc";
const chainOf = (veth: string, dir: HostDir): string =>
  `${veth}-${dir === "ingress" ? "in" : dir === "egress" ? "out" : "svc"}`;

/**
 * A pod's chains on the node, for its host veth: the directions given are replaced, the others
 * removed; `attached: false` takes the veth out of the node's pods too (DEL). `svc` is left as it
 * is when not given (only eni pods have one) and removed when empty: making and deleting a chain in
 * one transaction costs the kernel a grace period (~15 ms here), so no script does it needlessly.
 */
export function hostPodScript(
  veth: string,
  dirs: { ingress?: string[]; egress?: string[]; svc?: string[] },
  attached = true,
): string {
  const lines: string[] = [`add element ${T} pods { "${veth}" }`];
  if (!attached) lines.push(`delete element ${T} pods { "${veth}" }`);
  for (const dir of ["ingress", "egress", "svc"] as const) {
    const chain = chainOf(veth, dir);
    const rules = dirs[dir];
    if (dir === "svc" && rules === undefined && attached) continue;
    lines.push(`add chain ${T} ${chain}`, `flush chain ${T} ${chain}`);
    lines.push(`add element ${T} ${dir} { "${veth}" : jump ${chain} }`);
    if (rules === undefined || (dir === "svc" && rules.length === 0))
      lines.push(`delete element ${T} ${dir} { "${veth}" }`, `delete chain ${T} ${chain}`);
    else for (const r of rules) lines.push(`add rule ${T} ${chain} ${r}`);
  }
  return lines.join("\n") + "\n";
}

/** Removes a pod's chains from the node's table (whether or not they exist). */
export function hostPodRemoval(veth: string): string {
  return hostPodScript(veth, {}, false);
}

/** The table inside an eni pod's namespace: replaced whole, in one transaction. */
export function podNetnsScript(o: {
  ingress: string[];
  egress: string[];
  /** The pod's veth to the node: egress by it is judged on the node; ingress from the node passes. */
  nodeVeth?: string;
  nodeAddresses: readonly string[];
  /** The cluster's nodes: what they judged at the source (marked) passes. */
  nodes?: readonly string[];
}): string {
  const node: string[] = [];
  for (const f of ["ip", "ip6"] as const) {
    const ips = o.nodeAddresses.filter((a) => family(a) === f);
    if (ips.length > 0) node.push(`${f} saddr { ${ips.join(", ")} } accept`);
  }
  for (const f of ["ip", "ip6"] as const) {
    const ips = [...new Set((o.nodes ?? []).filter((a) => family(a) === f))].sort();
    if (ips.length > 0) node.push(`${f} saddr { ${ips.join(", ")} } ${dscpOf(f)} accept`);
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
