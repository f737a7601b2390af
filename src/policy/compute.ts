// What NetworkPolicy allows one pod to receive and send, computed from the cluster's policies, pods
// and namespaces (pure). Kubernetes' rules: a pod is isolated in a direction once any policy of its
// namespace selects it for that direction; then a connection passes if any rule of any such policy
// allows it (policies add up); within a rule the peer must match one of its peers (OR) and the port
// one of its ports; within a peer, a podSelector and a namespaceSelector both apply (AND).
import { cidrContains, parseCidr, tryParseIp } from "../net/ip.js";
import type { LabelSelector, Namespace, Pod, Policy, PolicyPeer, PolicyPort, PolicyRule } from "./model.js";

export type Protocol = "tcp" | "udp" | "sctp";

/** A port or range of one protocol; no `first`: every port of the protocol. */
export interface PortMatch {
  protocol: Protocol;
  first?: number;
  last?: number;
}

/** Peer addresses: a list of pods' addresses, or a CIDR less its exceptions. */
export type AddrMatch = { ips: string[] } | { cidr: string; except: string[] };

/** One way through: a peer (none: any) on a port (none: any). */
export interface Clause {
  peers?: AddrMatch;
  ports?: PortMatch[];
  /** The policy it comes from, "namespace/name". */
  policy: string;
}

export interface Direction {
  /** The policies that isolate the pod in this direction; empty: not isolated, everything passes. */
  policies: string[];
  clauses: Clause[];
}

export interface PodPolicy {
  ingress: Direction;
  egress: Direction;
}

/** What remote pods admit from one client: each allowance's addresses and ports (none: any). */
export interface SourceJudgement {
  allowed: Array<{ ips: string[]; ports?: PortMatch[] }>;
  /** Every address of the remote pods isolated for ingress. */
  isolated: string[];
}

export interface World {
  policies: readonly Policy[];
  pods: readonly Pod[];
  namespaces: ReadonlyMap<string, Namespace>;
}

/** Whether a label selector matches these labels ({} matches everything). */
export function selects(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const v = labels[e.key];
    const inValues = has && (e.values ?? []).includes(v ?? "");
    switch (e.operator) {
      case "In":
        if (!inValues) return false;
        break;
      case "NotIn":
        if (inValues) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        return false; // an operator this version does not know selects nothing
    }
  }
  return true;
}

const PROTOCOLS: Readonly<Record<string, Protocol>> = { TCP: "tcp", UDP: "udp", SCTP: "sctp" };

/** Every pod of the cluster as a peer: one object, so its selection is cached like a policy's peers. */
const ANY_PEER: PolicyPeer = { namespaceSelector: {} };

// A world's peer selections, each computed once however many pods the policy selects: by the
// peer object (a policy's, kept as long as the policy is) and, for a peer without a namespace
// selector, the policy's namespace.
const selections = new WeakMap<World, WeakMap<PolicyPeer, Map<string, Pod[]>>>();

/** Pods a peer (pod and/or namespace selector) names, seen from a policy in namespace `ns`. */
function peerPods(peer: PolicyPeer, ns: string, w: World): Pod[] {
  let memo = selections.get(w);
  if (memo === undefined) selections.set(w, (memo = new WeakMap()));
  let byNs = memo.get(peer);
  if (byNs === undefined) memo.set(peer, (byNs = new Map()));
  const key = peer.namespaceSelector === undefined ? ns : "";
  const hit = byNs.get(key);
  if (hit !== undefined) return hit;
  const found = selectPeers(peer, ns, w);
  byNs.set(key, found);
  return found;
}

// A world's peers (pods with addresses that are not host-network) by namespace, once per world.
const byNamespace = new WeakMap<World, Map<string, Pod[]>>();
function peersIn(w: World): Map<string, Pod[]> {
  let m = byNamespace.get(w);
  if (m !== undefined) return m;
  m = new Map();
  for (const p of w.pods) {
    if (p.hostNetwork || p.finished || p.ips.length === 0) continue;
    const l = m.get(p.namespace);
    if (l === undefined) m.set(p.namespace, [p]);
    else l.push(p);
  }
  byNamespace.set(w, m);
  return m;
}

function selectPeers(peer: PolicyPeer, ns: string, w: World): Pod[] {
  const index = peersIn(w);
  const sel = peer.namespaceSelector;
  const spaces =
    sel === undefined ? [ns] : [...index.keys()].filter((n) => selects(sel, w.namespaces.get(n)?.labels ?? {}));
  const out: Pod[] = [];
  for (const n of spaces)
    for (const p of index.get(n) ?? [])
      if (peer.podSelector === undefined || selects(peer.podSelector, p.labels)) out.push(p);
  return out;
}

/** A policy port on a pod: numbers as they are, a name as that pod's container port of that name. */
function resolvePort(port: PolicyPort, pod: Pod | undefined): PortMatch | undefined {
  const protocol = PROTOCOLS[port.protocol];
  if (protocol === undefined) return undefined;
  if (port.port === undefined) return { protocol };
  if (typeof port.port === "number")
    return {
      protocol,
      first: port.port,
      last: port.endPort !== undefined && port.endPort >= port.port ? port.endPort : port.port,
    };
  if (/^\d+$/.test(port.port)) return { protocol, first: Number(port.port), last: Number(port.port) };
  const named = pod?.ports.find((c) => c.name === port.port && PROTOCOLS[c.protocol] === protocol);
  return named === undefined ? undefined : { protocol, first: named.containerPort, last: named.containerPort };
}

function ruleClauses(
  rule: PolicyRule,
  policy: string,
  ns: string,
  self: Pod,
  dir: "ingress" | "egress",
  w: World,
): Clause[] {
  // Ports named by a name resolve on the pod that listens: the pod itself for ingress, each peer for egress.
  const named = dir === "egress" && rule.ports.some(isName);
  const portsOn = (pod: Pod | undefined): PortMatch[] | undefined => {
    if (rule.ports.length === 0) return undefined;
    return rule.ports.map((p) => resolvePort(p, pod)).filter((p): p is PortMatch => p !== undefined);
  };
  const out: Clause[] = [];
  const add = (peers: AddrMatch | undefined, ports: PortMatch[] | undefined): void => {
    if (ports !== undefined && ports.length === 0) return; // only unknown ports: matches nothing
    if (peers !== undefined && "ips" in peers && peers.ips.length === 0) return;
    out.push({ ...(peers === undefined ? {} : { peers }), ...(ports === undefined ? {} : { ports }), policy });
  };
  const selfPorts = portsOn(dir === "ingress" ? self : undefined);
  if (rule.peers.length === 0) {
    // Every peer: numbers hold for any address, names for every pod whose port has that name.
    add(undefined, selfPorts);
    if (named) {
      const r = namedOnly(rule);
      const on = (p: Pod): PortMatch[] =>
        r.ports.map((x) => resolvePort(x, p)).filter((x): x is PortMatch => x !== undefined);
      for (const g of namedGroups(peerPods(ANY_PEER, ns, w), r, on)) add({ ips: g.ips }, g.ports);
    }
    return out;
  }
  for (const peer of rule.peers) {
    if (peer.ipBlock !== undefined) {
      add({ cidr: peer.ipBlock.cidr, except: peer.ipBlock.except ?? [] }, selfPorts);
      continue;
    }
    const pods = peerPods(peer, ns, w);
    if (!named) {
      add({ ips: ipsOf(pods) }, selfPorts);
      continue;
    }
    for (const g of namedGroups(pods, rule, portsOn)) add({ ips: g.ips }, g.ports);
  }
  return out;
}

const isName = (p: PolicyPort): boolean => typeof p.port === "string" && !/^\d+$/.test(p.port);
const namedParts = new WeakMap<PolicyRule, PolicyRule>();
// A rule's named ports alone (one object per rule: selections are cached on it).
function namedOnly(rule: PolicyRule): PolicyRule {
  let r = namedParts.get(rule);
  if (r === undefined) namedParts.set(rule, (r = { peers: rule.peers, ports: rule.ports.filter(isName) }));
  return r;
}

// The addresses of a selection (one array per selection: the renderer caches on it).
const ipLists = new WeakMap<Pod[], string[]>();
function ipsOf(pods: Pod[]): string[] {
  let ips = ipLists.get(pods);
  if (ips === undefined) ipLists.set(pods, (ips = pods.flatMap((p) => p.ips)));
  return ips;
}

type Group = { ips: string[]; ports: PortMatch[] | undefined };
const groups = new WeakMap<Pod[], Map<PolicyRule, Group[]>>();
// Peers whose port names resolve to the same ports share one clause (once per selection and rule).
function namedGroups(pods: Pod[], rule: PolicyRule, portsOn: (p: Pod) => PortMatch[] | undefined): Group[] {
  let byRule = groups.get(pods);
  if (byRule === undefined) groups.set(pods, (byRule = new Map()));
  const hit = byRule.get(rule);
  if (hit !== undefined) return hit;
  const byPorts = new Map<string, Group>();
  for (const p of pods) {
    const ports = portsOn(p);
    const k = JSON.stringify(ports);
    const g = byPorts.get(k);
    if (g === undefined) byPorts.set(k, { ips: [...p.ips], ports });
    else g.ips.push(...p.ips);
  }
  const found = [...byPorts.values()];
  byRule.set(rule, found);
  return found;
}

function direction(self: Pod, dir: "ingress" | "egress", w: World): Direction {
  const d: Direction = { policies: [], clauses: [] };
  for (const pol of w.policies) {
    const rules = pol[dir];
    if (rules === undefined || pol.namespace !== self.namespace || !selects(pol.podSelector, self.labels)) continue;
    const id = `${pol.namespace}/${pol.name}`;
    d.policies.push(id);
    for (const r of rules) d.clauses.push(...ruleClauses(r, id, pol.namespace, self, dir, w));
  }
  return d;
}

/** What the policies of the world allow `pod` to receive and send. */
export function podPolicy(pod: Pod, w: World): PodPolicy {
  return { ingress: direction(pod, "ingress", w), egress: direction(pod, "egress", w) };
}

// Each pod's ingress, once per world (every local client that is judged at its source asks).
const ingressOf = new WeakMap<World, Map<Pod, Direction>>();

function admits(c: Clause, client: readonly string[]): boolean {
  const p = c.peers;
  if (p === undefined) return true;
  if ("ips" in p) return client.some((ip) => p.ips.includes(ip));
  return client.some((a) => {
    const ip = tryParseIp(a);
    if (ip === undefined || !cidrContains(parseCidr(p.cidr), ip)) return false;
    return !p.except.some((e) => cidrContains(parseCidr(e), ip));
  });
}

/**
 * What the pods that `remote` picks (pods on other nodes) admit from `client`: for a client whose
 * connections to them arrive masqueraded as its node (eni pods' Service traffic), judged on the
 * client's node instead. Pods not isolated for ingress admit everything and are not listed.
 */
export function judgedAtSource(client: Pod, w: World, remote: (p: Pod) => boolean): SourceJudgement {
  let memo = ingressOf.get(w);
  if (memo === undefined) ingressOf.set(w, (memo = new Map()));
  const out: SourceJudgement = { allowed: [], isolated: [] };
  for (const d of w.pods) {
    if (d.hostNetwork || d.finished || d.ips.length === 0 || !remote(d)) continue;
    let ing = memo.get(d);
    if (ing === undefined) memo.set(d, (ing = direction(d, "ingress", w)));
    if (ing.policies.length === 0) continue;
    out.isolated.push(...d.ips);
    for (const c of ing.clauses)
      if (admits(c, client.ips)) out.allowed.push({ ips: d.ips, ...(c.ports === undefined ? {} : { ports: c.ports }) });
  }
  return out;
}
