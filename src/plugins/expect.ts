// The state an attachment leaves in the kernel, as values: a plan says what it expects, and one pure
// function compares that with snapshots. CHECK fails on any difference; the doctor prints them as
// findings with the consequence each one has for the pod.
import { missingFrom } from "../kernel/iptables.js";
import type { Snapshot } from "../kernel/snapshot.js";
import {
  HOST,
  type IptablesRuleSet,
  type IptablesTable,
  type Neighbour,
  type Netns,
  type Route,
  type Rule,
} from "../kernel/types.js";

export type Fact =
  | { kind: "link"; ns: Netns; name: string; up?: boolean; mac?: string; linkKind?: string; alias?: string }
  | { kind: "address"; ns: Netns; dev: string; cidr: string }
  | { kind: "route"; ns: Netns; route: Route }
  | { kind: "rule"; ns: Netns; rule: Rule }
  | { kind: "neighbour"; ns: Netns; neigh: Neighbour }
  | { kind: "iptables"; ns: Netns; set: IptablesRuleSet }
  | { kind: "sysctl"; ns: Netns; key: string; value: string };

export type Severity = "error" | "warning";

/** One fact the attachment depends on; `code` names it in findings, `why` says what breaks without it. */
export interface Expectation {
  fact: Fact;
  code: string;
  severity: Severity;
  why: string;
}

export interface Finding {
  severity: Severity;
  /** `<code>-missing` or `<code>-wrong`. */
  code: string;
  message: string;
  /** What to do about it, in one line. */
  fix: string;
}

const RECREATE = "recreate the pod (kubectl delete pod …): its DEL and a new ADD rebuild what the plugins plan";

/**
 * What restores a fact: on the host, the command for what one command restores (a route, a
 * neighbour, a sysctl); in the pod, or for anything bigger, recreating the pod.
 */
export function fixOf(f: Fact): string {
  if (f.ns !== HOST) return `${RECREATE[0]!.toUpperCase()}${RECREATE.slice(1)}.`;
  switch (f.kind) {
    case "route":
      return `On the node: ip ${describeRoute(f.route).replace(/^route /, "route replace ")}. Or ${RECREATE}.`;
    case "neighbour":
      return f.neigh.proxy === true
        ? `On the node: ip neigh add proxy ${f.neigh.ip} dev ${f.neigh.dev}. Or ${RECREATE}.`
        : `On the node: ip neigh replace ${f.neigh.ip}${f.neigh.mac === undefined ? "" : ` lladdr ${f.neigh.mac}`} dev ${f.neigh.dev} nud permanent. Or ${RECREATE}.`;
    case "sysctl":
      return `On the node: sysctl -w ${f.key}=${f.value} (the next pod's ADD sets it too; find what changed it).`;
    default:
      return `${RECREATE[0]!.toUpperCase()}${RECREATE.slice(1)}.`;
  }
}

const where = (ns: Netns): string => (ns === HOST ? "on the host" : "in the pod");

export function describeRoute(r: Route): string {
  const dst = r.dst === "0.0.0.0/0" ? "default" : r.dst;
  return `route ${dst}${r.gw === undefined ? "" : ` via ${r.gw}`}${r.dev === undefined ? "" : ` dev ${r.dev}`}${r.scope === "link" ? " scope link" : ""}${(r.table ?? 254) === 254 ? "" : ` table ${r.table}`}`;
}

export function describeFact(f: Fact): string {
  switch (f.kind) {
    case "link":
      return `interface ${f.name}`;
    case "address":
      return `address ${f.cidr} on ${f.dev}`;
    case "route":
      return describeRoute(f.route);
    case "rule":
      return `rule ${f.rule.priority} lookup ${f.rule.table}`;
    case "neighbour":
      return `${f.neigh.proxy === true ? "proxy-ARP entry" : "neighbour"} ${f.neigh.ip} on ${f.neigh.dev}`;
    case "iptables":
      return `iptables ${f.set.chains.map((c) => `${c.table}/${c.name}`).join(", ")}`;
    case "sysctl":
      return `sysctl ${f.key}`;
  }
}

type Outcome = { missing: true } | { missing: false; wrong?: string };
const ok: Outcome = { missing: false };

function routeOutcome(s: Snapshot, want: Route): Outcome {
  const table = want.table ?? 254;
  const same = s.routes.filter((r) => r.dst === want.dst && (r.table ?? 254) === table);
  if (same.length === 0) return { missing: true };
  const fits = (r: Route): boolean =>
    (want.gw === undefined || r.gw === want.gw) &&
    (want.dev === undefined || r.dev === want.dev) &&
    (want.scope === undefined || (r.scope ?? "global") === want.scope);
  if (same.some(fits)) return ok;
  return { missing: false, wrong: `it is ${same.map((r) => describeRoute(r)).join(", ")}` };
}

function outcome(f: Fact, s: Snapshot): Outcome {
  switch (f.kind) {
    case "link": {
      const l = s.links.find((x) => x.name === f.name);
      if (l === undefined) return { missing: true };
      if (f.up === true && !l.up) return { missing: false, wrong: "it is down" };
      if (f.mac !== undefined && l.mac !== f.mac.toLowerCase())
        return { missing: false, wrong: `its MAC is ${l.mac}, expected ${f.mac}` };
      if (f.linkKind !== undefined && l.kind !== f.linkKind)
        return { missing: false, wrong: `it is a ${l.kind}, expected a ${f.linkKind}` };
      if (f.alias !== undefined && l.alias !== f.alias)
        return {
          missing: false,
          wrong: `its alias is ${l.alias === undefined ? "empty" : `"${l.alias}"`}, expected "${f.alias}"`,
        };
      return ok;
    }
    case "address":
      return s.addresses.some((a) => a.dev === f.dev && a.cidr === f.cidr) ? ok : { missing: true };
    case "route":
      return routeOutcome(s, f.route);
    case "rule": {
      const r = f.rule;
      const same = (x: Rule): boolean =>
        x.priority === r.priority && x.table === r.table && x.fwmark === r.fwmark && x.iif === r.iif && x.src === r.src;
      return s.rules.some(same) ? ok : { missing: true };
    }
    case "neighbour": {
      const list = f.neigh.proxy === true ? s.proxies : s.neighbours;
      const n = list.find((x) => x.dev === f.neigh.dev && x.ip === f.neigh.ip);
      if (n === undefined) return { missing: true };
      if (f.neigh.mac !== undefined && n.mac !== f.neigh.mac.toLowerCase())
        return { missing: false, wrong: `it points at ${n.mac ?? "nothing"}, expected ${f.neigh.mac}` };
      return ok;
    }
    case "iptables": {
      const tables = new Map(Object.entries(s.iptables)) as Map<
        string,
        NonNullable<Snapshot["iptables"][IptablesTable]>
      >;
      for (const c of [...f.set.chains, ...f.set.jumps])
        if (!tables.has(c.table)) return { missing: false, wrong: `table ${c.table} could not be read` };
      const problems = missingFrom(f.set, tables);
      return problems.length === 0 ? ok : { missing: false, wrong: problems.join("; ") };
    }
    case "sysctl": {
      const v = s.sysctls[f.key];
      if (v === undefined) return { missing: true };
      return v === f.value ? ok : { missing: false, wrong: `it is ${v}, expected ${f.value}` };
    }
  }
}

/** The iptables tables and sysctls a snapshot must read for these expectations, per namespace. */
export function snapshotNeeds(
  expect: readonly Expectation[],
  ns: Netns,
): { iptables: IptablesTable[]; sysctls: string[] } {
  const tables = new Set<IptablesTable>();
  const sysctls = new Set<string>();
  for (const e of expect) {
    if (e.fact.ns !== ns) continue;
    if (e.fact.kind === "iptables") for (const c of [...e.fact.set.chains, ...e.fact.set.jumps]) tables.add(c.table);
    if (e.fact.kind === "sysctl") sysctls.add(e.fact.key);
  }
  return { iptables: [...tables], sysctls: [...sysctls] };
}

/** Compare expectations with snapshots of their namespaces. Pure. A namespace without a snapshot is not judged. */
export function diffExpect(expect: readonly Expectation[], snapshots: ReadonlyMap<Netns, Snapshot>): Finding[] {
  const out: Finding[] = [];
  for (const e of expect) {
    const s = snapshots.get(e.fact.ns);
    if (s === undefined || !s.exists) continue;
    const o = outcome(e.fact, s);
    if (o.missing)
      out.push({
        severity: e.severity,
        code: `${e.code}-missing`,
        message: `The ${describeFact(e.fact)} is missing ${where(e.fact.ns)}: ${e.why}`,
        fix: fixOf(e.fact),
      });
    else if (o.wrong !== undefined)
      out.push({
        severity: e.severity,
        code: `${e.code}-wrong`,
        message: `The ${describeFact(e.fact)} ${where(e.fact.ns)} is not as planned (${o.wrong}): ${e.why}`,
        fix: fixOf(e.fact),
      });
  }
  return out;
}
