// An in-memory Kernel for unit tests. It models what tcnp relies on (namespaces, veth pairs across
// them, connected routes appearing when a link comes up, gateway reachability, EEXIST on duplicates,
// rules surviving their device) and passes the same contract suite as NetlinkKernel.
import { cidrContains, formatCidr, networkOf, parseCidr, parseIp } from "../net/ip.js";
import { applyText, deleteText } from "./iptables.js";
import { emptyTables, restore, type FakeTables } from "./fake-iptables.js";
import {
  HOST,
  KernelError,
  namedNetns,
  sysctlPath,
  type Address,
  type IptablesDump,
  type IptablesRuleSet,
  type IptablesTable,
  type Kernel,
  type Link,
  type LinkChange,
  type Neighbour,
  type Netns,
  type Route,
  type Rule,
  type VethSpec,
} from "./types.js";

interface FakeLink extends Link {
  peer?: { ns: Netns; index: number };
}

interface NsState {
  id: number;
  nextIndex: number;
  links: Map<number, FakeLink>;
  addrs: Address[];
  routes: Route[];
  rules: Rule[];
  neigh: Neighbour[];
  sysctl: Map<string, string>;
  iptables: FakeTables;
}

const MAIN = 254;
const GLOBAL_SYSCTLS: Record<string, string> = {
  "net/ipv4/ip_forward": "0",
  "net/ipv4/conf/all/forwarding": "0",
  "net/ipv4/conf/all/rp_filter": "0",
  "net/ipv4/conf/all/arp_ignore": "0",
  "net/ipv4/conf/all/proxy_arp": "0",
  "net/ipv4/conf/default/rp_filter": "0",
  "net/ipv6/conf/all/forwarding": "0",
};
const PER_LINK_SYSCTLS = [
  "forwarding",
  "proxy_arp",
  "rp_filter",
  "arp_notify",
  "arp_ignore",
  "route_localnet",
  "accept_local",
];
const PER_LINK_NEIGH = ["proxy_delay"];

export interface FakeKernelOptions {
  /** Whether `dummy` links can be created (this project's CI kernel cannot). */
  dummy?: boolean;
}

export class FakeKernel implements Kernel {
  #ns = new Map<Netns, NsState>();
  #nextNsId = 1;
  #macSeq = 1;
  #dummy: boolean;
  /** Gratuitous ARPs sent: "ns dev ip". */
  readonly announcements: string[] = [];

  constructor(opts: FakeKernelOptions = {}) {
    this.#dummy = opts.dummy === true;
    this.#addNs(HOST);
  }

  #addNs(path: Netns): NsState {
    const st: NsState = {
      id: this.#nextNsId++,
      nextIndex: 2,
      links: new Map(),
      addrs: [],
      routes: [],
      rules: [
        { priority: 0, table: 255 },
        { priority: 32766, table: MAIN },
        { priority: 32767, table: 253 },
      ],
      neigh: [],
      sysctl: new Map(Object.entries(GLOBAL_SYSCTLS)),
      iptables: emptyTables(),
    };
    st.links.set(1, { index: 1, name: "lo", mac: "00:00:00:00:00:00", mtu: 65536, up: false, kind: "device" });
    this.#addLinkSysctls(st, "lo");
    this.#ns.set(path, st);
    return st;
  }

  #addLinkSysctls(st: NsState, name: string): void {
    for (const k of PER_LINK_SYSCTLS) st.sysctl.set(`net/ipv4/conf/${name}/${k}`, "0");
    for (const k of PER_LINK_NEIGH) st.sysctl.set(`net/ipv4/neigh/${name}/${k}`, "80");
  }

  #dropLinkSysctls(st: NsState, name: string): void {
    for (const key of [...st.sysctl.keys()]) {
      if (key.startsWith(`net/ipv4/conf/${name}/`) || key.startsWith(`net/ipv4/neigh/${name}/`)) st.sysctl.delete(key);
    }
  }

  #st(ns: Netns, op: string): NsState {
    const st = this.#ns.get(ns);
    if (st === undefined) throw new KernelError(op, ns, "ENOENT_NETNS");
    return st;
  }

  #byName(st: NsState, name: string): FakeLink | undefined {
    for (const l of st.links.values()) if (l.name === name) return l;
    return undefined;
  }

  #need(ns: Netns, name: string, op: string): [NsState, FakeLink] {
    const st = this.#st(ns, op);
    const l = this.#byName(st, name);
    if (l === undefined) throw new KernelError(op, ns, "ENODEV", { detail: `no link "${name}"` });
    return [st, l];
  }

  #mac(): string {
    const n = this.#macSeq++;
    return `02:fa:00:00:${((n >> 8) & 0xff).toString(16).padStart(2, "0")}:${(n & 0xff).toString(16).padStart(2, "0")}`;
  }

  #insertLink(st: NsState, link: Omit<FakeLink, "index">, keepIndex?: number): FakeLink {
    const index = keepIndex !== undefined && !st.links.has(keepIndex) ? keepIndex : st.nextIndex++;
    if (index >= st.nextIndex) st.nextIndex = index + 1;
    const l: FakeLink = { ...link, index };
    st.links.set(index, l);
    this.#addLinkSysctls(st, l.name);
    return l;
  }

  // Everything that references a device goes with it (rules stay, detached, as in Linux).
  #forgetDevice(st: NsState, name: string): void {
    st.addrs = st.addrs.filter((a) => a.dev !== name);
    st.routes = st.routes.filter((r) => r.dev !== name);
    st.neigh = st.neigh.filter((n) => n.dev !== name);
    this.#dropLinkSysctls(st, name);
  }

  #connectedRoutes(st: NsState, link: FakeLink): void {
    for (const a of st.addrs.filter((x) => x.dev === link.name && x.noprefixroute !== true)) {
      const c = parseCidr(a.cidr);
      if (c.prefix === 32) continue;
      const dst = formatCidr(networkOf(c));
      if (!st.routes.some((r) => r.dst === dst && r.dev === link.name)) {
        st.routes.push({
          dst,
          dev: link.name,
          scope: "link",
          table: MAIN,
          src: a.cidr.split("/")[0]!,
          proto: "kernel",
        });
      }
    }
  }

  close(): void {}

  // ---- namespaces -------------------------------------------------------------------------------

  netnsExists(ns: Netns): boolean {
    return this.#ns.has(ns);
  }

  netnsId(ns: Netns): string {
    return `fake:${this.#st(ns, "identify the network namespace").id}`;
  }

  async createNetns(name: string): Promise<Netns> {
    const path = namedNetns(name);
    if (this.#ns.has(path)) throw new KernelError(`create netns "${name}"`, HOST, "EEXIST");
    this.#addNs(path);
    return path;
  }

  /** Register an existing namespace path (as a runtime would have created it). */
  addNetnsPath(path: Netns): void {
    if (!this.#ns.has(path)) this.#addNs(path);
  }

  async deleteNetns(name: string): Promise<boolean> {
    const path = name.startsWith("/") ? name : namedNetns(name);
    const st = this.#ns.get(path);
    if (st === undefined) return false;
    // Virtual links die with the namespace (their veth peers too); physical ones return to the host.
    for (const l of [...st.links.values()]) {
      if (l.name === "lo") continue;
      if (l.kind === "device") {
        const host = this.#st(HOST, "return a device");
        const name = this.#byName(host, l.name) === undefined ? l.name : `dev${l.index}`;
        this.#insertLink(host, { name, mac: l.mac, mtu: l.mtu, up: false, kind: "device" });
      } else if (l.peer !== undefined) {
        const ps = this.#ns.get(l.peer.ns);
        const p = ps?.links.get(l.peer.index);
        if (ps !== undefined && p !== undefined) {
          ps.links.delete(p.index);
          this.#forgetDevice(ps, p.name);
        }
      }
    }
    this.#ns.delete(path);
    return true;
  }

  // ---- links ------------------------------------------------------------------------------------

  async listLinks(ns: Netns): Promise<Link[]> {
    return [...this.#st(ns, "list links").links.values()]
      .sort((a, b) => a.index - b.index)
      .map((l) => {
        const out: Link = { index: l.index, name: l.name, mac: l.mac, mtu: l.mtu, up: l.up, kind: l.kind };
        if (l.alias !== undefined) out.alias = l.alias;
        if (l.master !== undefined) out.master = l.master;
        if (l.peer !== undefined) {
          out.peerIndex = l.peer.index;
          if (l.peer.ns !== ns) out.peerInOtherNetns = true;
        }
        return out;
      });
  }

  async getLink(ns: Netns, name: string): Promise<Link | undefined> {
    return (await this.listLinks(ns)).find((l) => l.name === name);
  }

  async createVeth(ns: Netns, spec: VethSpec): Promise<void> {
    const op = `create veth "${spec.name}"`;
    const st = this.#st(ns, op);
    const ps = this.#st(spec.peer.netns, op);
    if (this.#byName(st, spec.name) !== undefined) throw new KernelError(op, ns, "EEXIST");
    if (this.#byName(ps, spec.peer.name) !== undefined || (st === ps && spec.name === spec.peer.name))
      throw new KernelError(op, ns, "EEXIST");
    const a = this.#insertLink(st, {
      name: spec.name,
      mac: spec.mac ?? this.#mac(),
      mtu: spec.mtu ?? 1500,
      up: false,
      kind: "veth",
    });
    const b = this.#insertLink(ps, {
      name: spec.peer.name,
      mac: spec.peer.mac ?? this.#mac(),
      mtu: spec.peer.mtu ?? 1500,
      up: false,
      kind: "veth",
    });
    a.peer = { ns: spec.peer.netns, index: b.index };
    b.peer = { ns, index: a.index };
  }

  async createLink(
    ns: Netns,
    spec: { name: string; kind: "bridge" | "dummy"; mac?: string; mtu?: number },
  ): Promise<void> {
    const op = `create ${spec.kind} "${spec.name}"`;
    const st = this.#st(ns, op);
    if (spec.kind === "dummy" && !this.#dummy) throw new KernelError(op, ns, "ENOTSUP");
    if (this.#byName(st, spec.name) !== undefined) throw new KernelError(op, ns, "EEXIST");
    this.#insertLink(st, {
      name: spec.name,
      mac: spec.mac ?? this.#mac(),
      mtu: spec.mtu ?? 1500,
      up: false,
      kind: spec.kind,
    });
  }

  /** Test hook: a NIC as a hypervisor hot-plug would create it. */
  addDevice(ns: Netns, spec: { name: string; mac: string; mtu?: number }): void {
    const st = this.#st(ns, "add a device");
    if (this.#byName(st, spec.name) !== undefined) throw new KernelError("add a device", ns, "EEXIST");
    this.#insertLink(st, { name: spec.name, mac: spec.mac, mtu: spec.mtu ?? 1500, up: false, kind: "device" });
  }

  async setLink(ns: Netns, name: string, change: LinkChange): Promise<void> {
    const op = `change link "${name}"`;
    const [st, l] = this.#need(ns, name, op);
    if (change.name !== undefined && change.name !== name) {
      if (this.#byName(st, change.name) !== undefined) throw new KernelError(op, ns, "EEXIST");
      for (const a of st.addrs) if (a.dev === name) a.dev = change.name;
      for (const r of st.routes) if (r.dev === name) r.dev = change.name;
      for (const n of st.neigh) if (n.dev === name) n.dev = change.name;
      for (const key of [...st.sysctl.keys()]) {
        for (const pre of ["net/ipv4/conf/", "net/ipv4/neigh/"]) {
          if (key.startsWith(`${pre}${name}/`)) {
            st.sysctl.set(`${pre}${change.name}/${key.slice(pre.length + name.length + 1)}`, st.sysctl.get(key)!);
            st.sysctl.delete(key);
          }
        }
      }
      l.name = change.name;
    }
    if (change.mtu !== undefined) l.mtu = change.mtu;
    if (change.mac !== undefined) l.mac = change.mac.toLowerCase();
    if (change.alias !== undefined) {
      if (change.alias === "") delete l.alias;
      else l.alias = change.alias;
    }
    if (change.master !== undefined) {
      if (change.master === "") delete l.master;
      else {
        const m = this.#byName(st, change.master);
        if (m === undefined) throw new KernelError(op, ns, "ENODEV", { detail: `no link "${change.master}"` });
        l.master = m.index;
      }
    }
    if (change.up === true && !l.up) {
      l.up = true;
      this.#connectedRoutes(st, l);
    } else if (change.up === false && l.up) {
      l.up = false;
      st.routes = st.routes.filter((r) => r.dev !== l.name);
    }
  }

  async moveLink(ns: Netns, name: string, target: Netns, newName?: string): Promise<void> {
    const op = `move link "${name}"`;
    const [st, l] = this.#need(ns, name, op);
    const ts = this.#st(target, op);
    const finalName = newName ?? name;
    if (this.#byName(ts, finalName) !== undefined) throw new KernelError(op, ns, "EEXIST");
    st.links.delete(l.index);
    this.#forgetDevice(st, l.name);
    const moved = this.#insertLink(
      ts,
      {
        name: finalName,
        mac: l.mac,
        mtu: l.mtu,
        up: false,
        kind: l.kind,
        ...(l.alias === undefined ? {} : { alias: l.alias }),
      },
      l.index,
    );
    if (l.peer !== undefined) {
      moved.peer = l.peer;
      const peer = this.#ns.get(l.peer.ns)?.links.get(l.peer.index);
      if (peer !== undefined) peer.peer = { ns: target, index: moved.index };
    }
  }

  async deleteLink(ns: Netns, name: string): Promise<boolean> {
    const st = this.#st(ns, `delete link "${name}"`);
    const l = this.#byName(st, name);
    if (l === undefined) return false;
    st.links.delete(l.index);
    this.#forgetDevice(st, l.name);
    for (const other of st.links.values()) if (other.master === l.index) delete other.master;
    if (l.peer !== undefined) {
      const ps = this.#ns.get(l.peer.ns);
      const p = ps?.links.get(l.peer.index);
      if (ps !== undefined && p !== undefined) {
        ps.links.delete(p.index);
        this.#forgetDevice(ps, p.name);
      }
    }
    return true;
  }

  // ---- addresses --------------------------------------------------------------------------------

  async listAddresses(ns: Netns, dev?: string): Promise<Address[]> {
    return this.#st(ns, "list addresses")
      .addrs.filter((a) => dev === undefined || a.dev === dev)
      .map((a) => ({ ...a }));
  }

  async addAddress(ns: Netns, addr: Address): Promise<void> {
    const op = `add address ${addr.cidr} to "${addr.dev}"`;
    const [st, l] = this.#need(ns, addr.dev, op);
    const ip = addr.cidr.split("/")[0];
    if (st.addrs.some((a) => a.dev === addr.dev && a.cidr.split("/")[0] === ip))
      throw new KernelError(op, ns, "EEXIST");
    const a: Address = { cidr: formatCidr(parseCidr(addr.cidr)), dev: addr.dev, scope: addr.scope ?? "global" };
    if (addr.noprefixroute === true) a.noprefixroute = true;
    st.addrs.push(a);
    if (l.up) this.#connectedRoutes(st, l);
  }

  async deleteAddress(ns: Netns, addr: Address): Promise<boolean> {
    const st = this.#st(ns, `delete address ${addr.cidr}`);
    const i = st.addrs.findIndex((a) => a.dev === addr.dev && a.cidr === formatCidr(parseCidr(addr.cidr)));
    if (i < 0) return false;
    const [a] = st.addrs.splice(i, 1);
    const c = parseCidr(a!.cidr);
    st.routes = st.routes.filter(
      (r) => !(r.proto === "kernel" && r.dev === a!.dev && r.dst === formatCidr(networkOf(c))),
    );
    return true;
  }

  // ---- routes -----------------------------------------------------------------------------------

  async listRoutes(ns: Netns, table: number | "all" = MAIN): Promise<Route[]> {
    return this.#st(ns, "list routes")
      .routes.filter((r) => table === "all" || (r.table ?? MAIN) === table)
      .map((r) => ({ ...r }));
  }

  #normalise(st: NsState, ns: Netns, route: Route, op: string): Route {
    const r: Route = {
      dst: formatCidr(networkOf(parseCidr(route.dst))),
      table: route.table ?? MAIN,
      scope: route.scope ?? (route.gw === undefined ? "link" : "global"),
      proto: "boot",
    };
    if (formatCidr(parseCidr(route.dst)) !== r.dst)
      throw new KernelError(op, ns, "EINVAL", { detail: "invalid prefix for given prefix length" });
    let dev = route.dev;
    if (dev !== undefined) {
      const l = this.#byName(st, dev);
      if (l === undefined) throw new KernelError(op, ns, "ENODEV", { detail: `no link "${dev}"` });
      if (!l.up) throw new KernelError(op, ns, "ENETDOWN");
    }
    if (route.gw !== undefined) {
      r.gw = route.gw;
      if (route.onlink === true) {
        if (dev === undefined) throw new KernelError(op, ns, "EINVAL", { detail: "onlink needs a device" });
        r.onlink = true;
      } else {
        const gw = parseIp(route.gw);
        const covering = st.routes.filter((x) => (x.table ?? MAIN) === MAIN && cidrContains(parseCidr(x.dst), gw));
        if (covering.length === 0) throw new KernelError(op, ns, "ENETUNREACH");
        const via = covering.find(
          (x) => x.scope === "link" && x.gw === undefined && (dev === undefined || x.dev === dev),
        );
        if (via === undefined) throw new KernelError(op, ns, "EINVAL", { detail: "Nexthop has invalid gateway" });
        dev = via.dev;
      }
    }
    if (dev !== undefined) r.dev = dev;
    if (route.src !== undefined) r.src = route.src;
    if (route.metric !== undefined) r.metric = route.metric;
    return r;
  }

  #sameKey(a: Route, b: Route): boolean {
    return a.dst === b.dst && (a.table ?? MAIN) === (b.table ?? MAIN) && (a.metric ?? 0) === (b.metric ?? 0);
  }

  async addRoute(ns: Netns, route: Route): Promise<void> {
    const op = `add route ${route.dst}`;
    const st = this.#st(ns, op);
    const r = this.#normalise(st, ns, route, op);
    if (st.routes.some((x) => this.#sameKey(x, r))) throw new KernelError(op, ns, "EEXIST");
    st.routes.push(r);
  }

  async replaceRoute(ns: Netns, route: Route): Promise<void> {
    const op = `replace route ${route.dst}`;
    const st = this.#st(ns, op);
    const r = this.#normalise(st, ns, route, op);
    st.routes = st.routes.filter((x) => !this.#sameKey(x, r));
    st.routes.push(r);
  }

  async deleteRoute(ns: Netns, route: Route): Promise<boolean> {
    const st = this.#st(ns, `delete route ${route.dst}`);
    const dst = formatCidr(networkOf(parseCidr(route.dst)));
    const i = st.routes.findIndex(
      (x) =>
        x.dst === dst &&
        (x.table ?? MAIN) === (route.table ?? MAIN) &&
        (route.dev === undefined || x.dev === route.dev) &&
        (route.gw === undefined || x.gw === route.gw) &&
        (route.metric === undefined || (x.metric ?? 0) === route.metric),
    );
    if (i < 0) return false;
    st.routes.splice(i, 1);
    return true;
  }

  // ---- rules ------------------------------------------------------------------------------------

  async listRules(ns: Netns): Promise<Rule[]> {
    return this.#st(ns, "list rules")
      .rules.map((r) => ({ ...r }))
      .sort((a, b) => a.priority - b.priority);
  }

  #ruleEq(a: Rule, b: Rule): boolean {
    const norm = (c: string | undefined): string | undefined =>
      c === undefined ? undefined : c.includes("/") ? c : `${c}/32`;
    return (
      a.priority === b.priority &&
      a.table === b.table &&
      a.iif === b.iif &&
      a.oif === b.oif &&
      norm(a.src) === norm(b.src) &&
      norm(a.dst) === norm(b.dst) &&
      a.fwmark === b.fwmark &&
      (a.fwmark === undefined || (a.fwmask ?? 0xffffffff) === (b.fwmask ?? 0xffffffff))
    );
  }

  async addRule(ns: Netns, rule: Rule): Promise<void> {
    const op = `add rule priority ${rule.priority}`;
    const st = this.#st(ns, op);
    if (st.rules.some((r) => this.#ruleEq(r, rule))) throw new KernelError(op, ns, "EEXIST");
    const r: Rule = { ...rule };
    if (r.src !== undefined && !r.src.includes("/")) r.src = `${r.src}/32`;
    if (r.dst !== undefined && !r.dst.includes("/")) r.dst = `${r.dst}/32`;
    if (r.fwmark !== undefined && r.fwmask === undefined) r.fwmask = 0xffffffff;
    st.rules.push(r);
  }

  async deleteRule(ns: Netns, rule: Rule): Promise<boolean> {
    const st = this.#st(ns, `delete rule priority ${rule.priority}`);
    const i = st.rules.findIndex((r) => this.#ruleEq(r, rule));
    if (i < 0) return false;
    st.rules.splice(i, 1);
    return true;
  }

  // ---- neighbours -------------------------------------------------------------------------------

  async listNeighbours(ns: Netns, opts?: { proxy?: boolean }): Promise<Neighbour[]> {
    const proxy = opts?.proxy === true;
    return this.#st(ns, "list neighbours")
      .neigh.filter((n) => (n.proxy === true) === proxy)
      .map((n) => ({ ...n }));
  }

  async setNeighbour(ns: Netns, n: Neighbour): Promise<void> {
    const op = `set neighbour ${n.ip} on "${n.dev}"`;
    const [st] = this.#need(ns, n.dev, op);
    const proxy = n.proxy === true;
    st.neigh = st.neigh.filter((x) => !(x.dev === n.dev && x.ip === n.ip && (x.proxy === true) === proxy));
    const e: Neighbour = { dev: n.dev, ip: n.ip };
    if (proxy) e.proxy = true;
    else {
      if (n.mac !== undefined) e.mac = n.mac.toLowerCase();
      if (n.permanent !== false) e.permanent = true;
    }
    st.neigh.push(e);
  }

  async deleteNeighbour(ns: Netns, n: Neighbour): Promise<boolean> {
    const st = this.#st(ns, `delete neighbour ${n.ip}`);
    const proxy = n.proxy === true;
    const i = st.neigh.findIndex((x) => x.dev === n.dev && x.ip === n.ip && (x.proxy === true) === proxy);
    if (i < 0) return false;
    st.neigh.splice(i, 1);
    return true;
  }

  // ---- sysctls ----------------------------------------------------------------------------------

  readSysctl(ns: Netns, key: string): string | undefined {
    return this.#st(ns, "read a sysctl").sysctl.get(sysctlPath(key));
  }

  writeSysctl(ns: Netns, key: string, value: string): void {
    const st = this.#st(ns, "write a sysctl");
    const k = sysctlPath(key);
    if (!st.sysctl.has(k)) throw new KernelError(`write sysctl ${k}=${value}`, ns, "ENOENT");
    st.sysctl.set(k, value);
    if (k === "net/ipv4/ip_forward") st.sysctl.set("net/ipv4/conf/all/forwarding", value);
  }

  // ---- iptables ---------------------------------------------------------------------------------

  #restore(ns: Netns, text: string, op: string): void {
    const st = this.#st(ns, op);
    try {
      st.iptables = restore(st.iptables, text);
    } catch (e) {
      throw new KernelError(op, ns, "EIPTABLES", { cause: e, detail: (e as Error).message });
    }
  }

  /** Run iptables-restore --noflush text, as a test would with the real binary. */
  iptablesRestore(ns: Netns, text: string): void {
    this.#restore(ns, text, "apply iptables rules");
  }

  async applyIptables(ns: Netns, set: IptablesRuleSet): Promise<void> {
    this.#restore(ns, applyText(set, this.#st(ns, "apply iptables rules").iptables), "apply iptables rules");
  }

  async deleteIptables(ns: Netns, set: IptablesRuleSet): Promise<void> {
    const text = deleteText(set, this.#st(ns, "delete iptables rules").iptables);
    if (text !== "") this.#restore(ns, text, "delete iptables rules");
  }

  async listIptables(ns: Netns, table: IptablesTable): Promise<IptablesDump> {
    const t = this.#st(ns, "read iptables").iptables.get(table);
    return new Map([...(t ?? new Map<string, string[]>())].map(([c, r]) => [c, [...r]]));
  }

  /** sysfs device directory → interface names (test setup). */
  readonly sysfs = new Map<string, string[]>();

  netDevicesAt(sysfsDir: string): string[] {
    return this.sysfs.get(sysfsDir) ?? [];
  }

  async announce(ns: Netns, dev: string, ip: string): Promise<void> {
    this.#need(ns, dev, `announce ${ip}`);
    this.announcements.push(`${ns} ${dev} ${ip}`);
  }
}
