// The Kernel port: everything tcnp does to a host's network stack. Every call names its target
// network namespace explicitly (a path to a netns file, or HOST for the namespace the process was
// started in); nothing is ambient.

/** The namespace this process was started in (a CNI plugin's "host"). */
export const HOST = "self";
export type Netns = string;

export type LinkKind = "veth" | "bridge" | "dummy" | "macvlan" | "device" | string;

export interface Link {
  index: number;
  name: string;
  mac: string;
  mtu: number;
  up: boolean;
  /** Link kind from IFLA_INFO_KIND; "device" for a link without one (a NIC). */
  kind: LinkKind;
  alias?: string;
  /** Index of the master device (bridge), if enslaved. */
  master?: number;
  /** For a veth: the peer's ifindex (in the peer's namespace). */
  peerIndex?: number;
  /** True when the peer lives in another namespace (IFLA_LINK_NETNSID present). */
  peerInOtherNetns?: boolean;
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  mac?: string;
  name?: string;
  alias?: string;
  /** Name of the master (bridge) to enslave to; "" to release. */
  master?: string;
}

export interface VethSpec {
  name: string;
  mac?: string;
  mtu?: number;
  peer: { name: string; netns: Netns; mac?: string; mtu?: number };
}

export interface Address {
  /** address/prefix */
  cidr: string;
  dev: string;
  noprefixroute?: boolean;
  scope?: "global" | "link" | "host";
}

export type RouteScope = "global" | "link" | "host";

export interface Route {
  /** Destination CIDR; "0.0.0.0/0" for a default route. */
  dst: string;
  gw?: string;
  dev?: string;
  /** Preferred source address. */
  src?: string;
  scope?: RouteScope;
  /** Routing table id; 254 (main) when absent. */
  table?: number;
  onlink?: boolean;
  metric?: number;
  /** "kernel" for routes the kernel made itself (connected routes); listing only. */
  proto?: "kernel" | "boot" | "static" | "other";
}

export interface Rule {
  priority: number;
  table: number;
  iif?: string;
  oif?: string;
  src?: string;
  dst?: string;
  fwmark?: number;
  fwmask?: number;
}

export interface Neighbour {
  dev: string;
  ip: string;
  mac?: string;
  permanent?: boolean;
  /** A proxy-ARP entry: answer ARP for `ip` on `dev`. */
  proxy?: boolean;
}

export type IptablesTable = "nat" | "filter" | "mangle" | "raw";

/** A user chain tcnp owns, with its rules in iptables-save form ("-d 10.0.0.5/32 -j ACCEPT"). */
export interface IptablesChain {
  table: IptablesTable;
  name: string;
  rules: string[];
}
/** A rule tcnp appends to a built-in chain (usually a jump into one of its own chains). */
export interface IptablesJump {
  table: IptablesTable;
  chain: string;
  rule: string;
}
export interface IptablesRuleSet {
  chains: IptablesChain[];
  jumps: IptablesJump[];
}
/** One table as iptables-save shows it: chain name → rules. */
export type IptablesDump = Map<string, string[]>;

export interface Kernel {
  // namespaces
  netnsExists(ns: Netns): boolean;
  /** Identity of a namespace (inode), to tell whether two paths name the same one. */
  netnsId(ns: Netns): string;
  createNetns(name: string): Promise<Netns>;
  deleteNetns(name: string): Promise<boolean>;

  // links
  listLinks(ns: Netns): Promise<Link[]>;
  getLink(ns: Netns, name: string): Promise<Link | undefined>;
  createVeth(ns: Netns, spec: VethSpec): Promise<void>;
  createLink(ns: Netns, spec: { name: string; kind: "bridge" | "dummy"; mac?: string; mtu?: number }): Promise<void>;
  setLink(ns: Netns, name: string, change: LinkChange): Promise<void>;
  /** Move a link to another namespace, optionally renaming it on the way (one request, no collision window). */
  moveLink(ns: Netns, name: string, target: Netns, newName?: string): Promise<void>;
  /** Delete a link; false if it did not exist. */
  deleteLink(ns: Netns, name: string): Promise<boolean>;

  // addresses
  listAddresses(ns: Netns, dev?: string): Promise<Address[]>;
  addAddress(ns: Netns, addr: Address): Promise<void>;
  deleteAddress(ns: Netns, addr: Address): Promise<boolean>;

  // routes
  /** Unicast routes of one table (main when absent), or of every table but local with `"all"`. */
  listRoutes(ns: Netns, table?: number | "all"): Promise<Route[]>;
  addRoute(ns: Netns, route: Route): Promise<void>;
  /** Add or replace the route to the same destination in the same table. */
  replaceRoute(ns: Netns, route: Route): Promise<void>;
  deleteRoute(ns: Netns, route: Route): Promise<boolean>;

  // policy rules
  /** IPv4 policy rules, including the kernel defaults (0 local, 32766 main, 32767 default). */
  listRules(ns: Netns): Promise<Rule[]>;
  addRule(ns: Netns, rule: Rule): Promise<void>;
  deleteRule(ns: Netns, rule: Rule): Promise<boolean>;

  // neighbours
  listNeighbours(ns: Netns, opts?: { proxy?: boolean }): Promise<Neighbour[]>;
  /** Add or replace. */
  setNeighbour(ns: Netns, n: Neighbour): Promise<void>;
  deleteNeighbour(ns: Netns, n: Neighbour): Promise<boolean>;

  // sysctls ("net.ipv4.ip_forward" or "net/ipv4/ip_forward")
  readSysctl(ns: Netns, key: string): string | undefined;
  writeSysctl(ns: Netns, key: string, value: string): void;

  // iptables
  applyIptables(ns: Netns, set: IptablesRuleSet): Promise<void>;
  deleteIptables(ns: Netns, set: IptablesRuleSet): Promise<void>;
  listIptables(ns: Netns, table: IptablesTable): Promise<IptablesDump>;

  /**
   * Network interface names under a sysfs device directory (its `net/` entries, or those of a
   * virtio child, as the reference host-device looks them up for `kernelpath` and `pciBusID`).
   */
  netDevicesAt(sysfsDir: string): string[];

  /** Send a gratuitous ARP for `ip` from `dev`. */
  announce(ns: Netns, dev: string, ip: string): Promise<void>;

  /** Release sockets and handles. */
  close(): void;
}

/** A kernel request that failed: the operation, the namespace and the errno name. */
export class KernelError extends Error {
  readonly op: string;
  readonly netns: Netns;
  readonly errno: string;
  constructor(op: string, netns: Netns, errno: string, options?: { cause?: unknown; detail?: string }) {
    const where = netns === HOST ? "the host namespace" : `netns "${netns}"`;
    super(
      `Cannot ${op} in ${where}: ${errno}${options?.detail === undefined ? "" : ` (${options.detail})`}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "KernelError";
    this.op = op;
    this.netns = netns;
    this.errno = errno;
  }
  get exists(): boolean {
    return this.errno === "EEXIST";
  }
  get missing(): boolean {
    return (
      this.errno === "ENODEV" || this.errno === "ENOENT" || this.errno === "ESRCH" || this.errno === "EADDRNOTAVAIL"
    );
  }
}

/** Named namespaces (`ip netns add NAME`) live at /var/run/netns/NAME. */
export const namedNetns = (name: string): Netns => `/var/run/netns/${name}`;
/** The name of a named namespace's path. */
export const netnsName = (path: string): string => path.slice("/var/run/netns/".length);

export const isKernelError = (e: unknown, errno?: string): e is KernelError =>
  e instanceof KernelError && (errno === undefined || e.errno === errno);

/** Sysctl keys are accepted dotted or slashed; interface names with dots must use slashes. */
export function sysctlPath(key: string): string {
  return key.includes("/") ? key.replace(/^\/?(proc\/sys\/)?/, "") : key.replace(/\./g, "/");
}
