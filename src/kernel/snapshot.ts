// One namespace's network state, read once: what CHECK and the doctor compare a plan's expected
// state against, and what the doctor prints.
import {
  HOST,
  type Address,
  type IptablesDump,
  type IptablesTable,
  type Kernel,
  type Link,
  type Neighbour,
  type Netns,
  type Route,
  type Rule,
} from "./types.js";

export interface Snapshot {
  exists: boolean;
  links: Link[];
  addresses: Address[];
  /** Routes of every table but local. */
  routes: Route[];
  rules: Rule[];
  /** Permanent neighbour entries. */
  neighbours: Neighbour[];
  proxies: Neighbour[];
  /** The iptables tables that were asked for and could be read. */
  iptables: Partial<Record<IptablesTable, IptablesDump>>;
  /** The sysctls that were asked for (undefined: absent). */
  sysctls: Record<string, string | undefined>;
}

export const emptySnapshot = (): Snapshot => ({
  exists: false,
  links: [],
  addresses: [],
  routes: [],
  rules: [],
  neighbours: [],
  proxies: [],
  iptables: {},
  sysctls: {},
});

/** Read a namespace; a missing one (or "" for a DEL without netns) is a snapshot that does not exist. */
export async function snapshot(
  k: Kernel,
  ns: Netns,
  want: { iptables?: readonly IptablesTable[]; sysctls?: readonly string[] } = {},
): Promise<Snapshot> {
  if (ns !== HOST && (ns === "" || !k.netnsExists(ns))) return emptySnapshot();
  const s: Snapshot = {
    exists: true,
    links: await k.listLinks(ns),
    addresses: await k.listAddresses(ns),
    routes: await k.listRoutes(ns, "all"),
    rules: await k.listRules(ns),
    neighbours: (await k.listNeighbours(ns)).filter((n) => n.permanent === true),
    proxies: await k.listNeighbours(ns, { proxy: true }),
    iptables: {},
    sysctls: {},
  };
  for (const t of want.iptables ?? []) {
    try {
      s.iptables[t] = await k.listIptables(ns, t);
    } catch {
      // no iptables on this node: the expectations that need it say so
    }
  }
  for (const key of want.sysctls ?? []) s.sysctls[key] = k.readSysctl(ns, key);
  return s;
}
