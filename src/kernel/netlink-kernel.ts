// The real Kernel: rtnetlink in the `netlink` package's formats over synchronous requests
// (netlink-sync.ts; one socket per namespace, created inside it), sysctls through /proc/sys
// written synchronously inside the namespace, iptables through iptables-restore forked from
// inside the namespace.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import type { NetlinkSocket, RtNetlinkSocket } from "netlink";
import { formatIp, ipBytes, ipFromBytes, parseCidr, parseIp } from "../net/ip.js";
import { applyText, deleteText, parseIptablesSave } from "./iptables.js";
import { formatMac, kindLinkinfo, linkKind, macBytes, vethLinkinfo } from "./netlink-codec.js";
import { hostNetnsFd, openNetns, withNetns } from "./netns.js";
import { SyncNetlinkSocket } from "./netlink-sync.js";
import { tcnpNative } from "../native/load.js";
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
  type RouteScope,
  type Rule,
  type VethSpec,
} from "./types.js";

// Only the rtnetlink part of the library: its index also evaluates the genl, nl80211 and wireguard
// struct tables, which every plugin start would pay for (about 1.5 ms in a CPU profile of an ADD).
// eslint-disable-next-line @typescript-eslint/consistent-type-imports -- the module is loaded lazily; only its type is named here
type NetlinkModule = typeof import("netlink/dist/rt/rt.js");

const CREATE_EXCL = 0x400 | 0x200;
const CREATE_REPLACE = 0x400 | 0x100;
const RT_TABLE_MAIN = 254;
const RT_TABLE_LOCAL = 255;
const RTNH_F_ONLINK = 4;
const TIMEOUT_MS = 10_000;
const UNSUPPORTED_KIND_MS = 5 * 60_000;

const SCOPES: Record<RouteScope, string> = { global: "UNIVERSE", link: "LINK", host: "HOST" };
const scopeName = (s: unknown): RouteScope =>
  s === "LINK" || s === 253 ? "link" : s === "HOST" || s === 254 ? "host" : "global";
const familyOf = (cidrOrIp: string): number => (cidrOrIp.includes(":") ? 10 : 2);

function errnoOf(e: unknown): string {
  const m = /Request rejected: (\w+)/.exec(e instanceof Error ? e.message : String(e));
  if (m !== null) return m[1]!;
  return (e as NodeJS.ErrnoException)?.code ?? "EIO";
}

type LinkMessage = Awaited<ReturnType<RtNetlinkSocket["getLinks"]>>[number];

function toLink(m: LinkMessage): Link {
  const a = m.attrs;
  const l: Link = {
    index: m.data.index ?? 0,
    name: a.ifname ?? "",
    mac: formatMac(a.address),
    mtu: a.mtu ?? 0,
    up: m.data.flags?.up === true,
    kind: linkKind(a.linkinfo) ?? "device",
  };
  if (a.ifalias !== undefined && a.ifalias !== "") l.alias = a.ifalias;
  if (a.master !== undefined && a.master !== 0) l.master = a.master;
  if (a.link !== undefined && a.link.length >= 4 && l.kind === "veth") l.peerIndex = a.link.readUInt32LE(0);
  if (a.linkNetnsid !== undefined) l.peerInOtherNetns = true;
  return l;
}

export class NetlinkKernel implements Kernel {
  #nl: NetlinkModule;
  #sockets = new Map<Netns, RtNetlinkSocket>();
  // The netlink package assembles multipart (dump) replies in one buffer per socket, so two
  // requests in flight on one socket can corrupt each other: one at a time per socket.
  #queues = new Map<Netns, Promise<unknown>>();

  readonly #longLived: boolean;
  /**
   * Link indices by namespace and name, learnt from every lookup: an operation on a link by name
   * sends one request, not a lookup and the request. A stale index (the link gone or made again,
   * by anyone) fails with ENODEV, and the operation looks the name up once more. Indices are not
   * reused soon (the kernel allocates them cyclically), and a namespace's entries go with its socket.
   */
  readonly #ifindex = new Map<Netns, Map<string, number>>();
  /** Link kinds the kernel refused to make (no module), until when that answer is kept. */
  readonly #unsupportedKinds = new Map<string, number>();

  private constructor(nl: NetlinkModule, longLived: boolean) {
    this.#nl = nl;
    this.#longLived = longLived;
  }

  /**
   * Load netlink lazily: the VERSION path and the cloud-only commands never pay for it.
   * `longLived` (the node agent): work that would hold a short-lived process's exit up (a packet
   * socket's close) is left to a thread instead of a forked grandchild.
   */
  static async create(opts: { longLived?: boolean } = {}): Promise<NetlinkKernel> {
    const nl = await import("netlink/dist/rt/rt.js");
    hostNetnsFd();
    return new NetlinkKernel(nl, opts.longLived === true);
  }

  #sock(ns: Netns): RtNetlinkSocket {
    let s = this.#sockets.get(ns);
    if (s === undefined) {
      // Synchronous requests (netlink-sync.ts): the package's own socket waits a turn of the
      // event loop for each answer.
      s = withNetns(ns, () => new this.#nl.RtNetlinkSocket(new SyncNetlinkSocket() as unknown as NetlinkSocket));
      this.#sockets.set(ns, s);
    }
    return s;
  }

  async #call<T>(op: string, ns: Netns, fn: (s: RtNetlinkSocket) => Promise<T>): Promise<T> {
    const sock = this.#sock(ns);
    const prev = this.#queues.get(ns) ?? Promise.resolve();
    const run = prev.catch(() => {}).then(() => fn(sock));
    this.#queues.set(ns, run);
    try {
      return await run;
    } catch (e) {
      if (e instanceof KernelError) throw e;
      throw new KernelError(op, ns, errnoOf(e), { cause: e });
    } finally {
      if (this.#queues.get(ns) === run) this.#queues.delete(ns);
    }
  }

  /** Close the socket kept for one namespace (a pod's, when its request is done; a long-lived agent). */
  forget(ns: Netns): void {
    if (ns === HOST || this.#queues.has(ns)) return;
    this.#dropSocket(ns);
  }

  close(): void {
    for (const s of this.#sockets.values()) s.socket.close();
    this.#sockets.clear();
    this.#ifindex.clear();
  }

  // ---- namespaces -------------------------------------------------------------------------------

  netnsExists(ns: Netns): boolean {
    if (ns === HOST) return true;
    try {
      const fd = fs.openSync(ns, "r");
      fs.closeSync(fd);
      return true;
    } catch {
      return false;
    }
  }

  netnsId(ns: Netns): string {
    const fd = openNetns(ns);
    try {
      const st = fs.fstatSync(fd);
      return `${st.dev}:${st.ino}`;
    } finally {
      fs.closeSync(fd);
    }
  }

  async createNetns(name: string): Promise<Netns> {
    const r = spawnSync("ip", ["netns", "add", name], { encoding: "utf8" });
    if (r.status !== 0)
      throw new KernelError(`create netns "${name}"`, HOST, r.stderr.includes("exists") ? "EEXIST" : "EIO", {
        detail: r.stderr.trim(),
      });
    return namedNetns(name);
  }

  async deleteNetns(name: string): Promise<boolean> {
    const path = namedNetns(name);
    this.#dropSocket(path);
    if (!fs.existsSync(path)) return false;
    const r = spawnSync("ip", ["netns", "delete", name], { encoding: "utf8" });
    if (r.status !== 0) throw new KernelError(`delete netns "${name}"`, HOST, "EIO", { detail: r.stderr.trim() });
    return true;
  }

  #remember(ns: Netns, name: string, index: number): void {
    let m = this.#ifindex.get(ns);
    if (m === undefined) this.#ifindex.set(ns, (m = new Map()));
    else if (m.size >= 4096) m.clear(); // links gone with their pods' namespaces are never deleted by name
    m.set(name, index);
  }

  #unlearn(ns: Netns, name?: string): void {
    if (name === undefined) this.#ifindex.delete(ns);
    else this.#ifindex.get(ns)?.delete(name);
  }

  #dropSocket(ns: Netns): void {
    this.#unlearn(ns);
    const s = this.#sockets.get(ns);
    if (s !== undefined) {
      s.socket.close();
      this.#sockets.delete(ns);
    }
  }

  // ---- links ------------------------------------------------------------------------------------

  async listLinks(ns: Netns): Promise<Link[]> {
    const msgs = await this.#call("list links", ns, (s) => s.getLinks(undefined, undefined, { timeout: TIMEOUT_MS }));
    const links = msgs.map(toLink);
    for (const l of links) this.#remember(ns, l.name, l.index);
    return links;
  }

  /** One RTM_GETLINK by name, not a dump. */
  async getLink(ns: Netns, name: string): Promise<Link | undefined> {
    try {
      const msgs = await this.#call(`find link "${name}"`, ns, (s) =>
        s.getLink({}, { ifname: name }, { timeout: TIMEOUT_MS }),
      );
      if (msgs[0] === undefined) return undefined;
      const l = toLink(msgs[0]);
      this.#remember(ns, name, l.index);
      return l;
    } catch (e) {
      if (e instanceof KernelError && (e.errno === "ENODEV" || e.errno === "ENOENT")) {
        this.#unlearn(ns, name);
        return undefined;
      }
      throw e;
    }
  }

  async #index(ns: Netns, name: string, op: string): Promise<number> {
    const l = await this.getLink(ns, name);
    if (l === undefined) throw new KernelError(op, ns, "ENODEV", { detail: `no link "${name}"` });
    return l.index;
  }

  /** `f` with the link's index: the one learnt, and on ENODEV (stale) a fresh lookup's. */
  async #byIndex<T>(ns: Netns, name: string, op: string, f: (index: number) => Promise<T>): Promise<T> {
    const known = this.#ifindex.get(ns)?.get(name);
    if (known !== undefined) {
      try {
        return await f(known);
      } catch (e) {
        if (!(e instanceof KernelError && e.errno === "ENODEV")) throw e;
        this.#unlearn(ns, name);
      }
    }
    return f(await this.#index(ns, name, op));
  }

  async createVeth(ns: Netns, spec: VethSpec): Promise<void> {
    const op = `create veth "${spec.name}"`;
    this.#unlearn(ns, spec.name);
    this.#unlearn(spec.peer.netns, spec.peer.name);
    const fd = spec.peer.netns === ns ? undefined : openNetns(spec.peer.netns);
    try {
      const peer: { name: string; netnsFd?: number; mac?: string; mtu?: number } = { name: spec.peer.name };
      if (fd !== undefined) peer.netnsFd = fd;
      if (spec.peer.mac !== undefined) peer.mac = spec.peer.mac;
      if (spec.peer.mtu !== undefined) peer.mtu = spec.peer.mtu;
      const attrs: NonNullable<Parameters<RtNetlinkSocket["newLink"]>[1]> = {
        ifname: spec.name,
        linkinfo: vethLinkinfo(peer),
      };
      if (spec.mac !== undefined) attrs.address = macBytes(spec.mac);
      if (spec.mtu !== undefined) attrs.mtu = spec.mtu;
      await this.#call(op, ns, (s) => s.newLink({}, attrs, { flags: CREATE_EXCL, timeout: TIMEOUT_MS }));
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  async createLink(
    ns: Netns,
    spec: { name: string; kind: "bridge" | "dummy"; mac?: string; mtu?: number },
  ): Promise<void> {
    const attrs: NonNullable<Parameters<RtNetlinkSocket["newLink"]>[1]> = {
      ifname: spec.name,
      linkinfo: kindLinkinfo(spec.kind),
    };
    if (spec.mac !== undefined) attrs.address = macBytes(spec.mac);
    if (spec.mtu !== undefined) attrs.mtu = spec.mtu;
    this.#unlearn(ns, spec.name);
    const op = `create ${spec.kind} "${spec.name}"`;
    // A link kind this kernel lacks: every attempt makes it run modprobe for the module (2–10 ms
    // here, on each pod's ADD in an agent), so the answer is kept for a while.
    if ((this.#unsupportedKinds.get(spec.kind) ?? 0) > Date.now())
      throw new KernelError(op, ns, "EOPNOTSUPP", { detail: `this kernel has no ${spec.kind} links` });
    try {
      await this.#call(op, ns, (s) => s.newLink({}, attrs, { flags: CREATE_EXCL, timeout: TIMEOUT_MS }));
    } catch (e) {
      if (e instanceof KernelError && (e.errno === "EOPNOTSUPP" || e.errno === "ENOTSUP"))
        this.#unsupportedKinds.set(spec.kind, Date.now() + UNSUPPORTED_KIND_MS);
      throw e;
    }
  }

  async setLink(ns: Netns, name: string, change: LinkChange): Promise<void> {
    const op = `change link "${name}"`;
    const attrs: NonNullable<Parameters<RtNetlinkSocket["setLink"]>[1]> = {};
    if (change.mtu !== undefined) attrs.mtu = change.mtu;
    if (change.mac !== undefined) attrs.address = macBytes(change.mac);
    if (change.name !== undefined && change.name !== name) attrs.ifname = change.name;
    if (change.alias !== undefined) attrs.ifalias = change.alias;
    if (change.master !== undefined) attrs.master = change.master === "" ? 0 : await this.#index(ns, change.master, op);
    const renamed = attrs.ifname !== undefined;
    if (renamed) this.#unlearn(ns, change.name);
    await this.#byIndex(ns, name, op, async (index) => {
      const data: NonNullable<Parameters<RtNetlinkSocket["setLink"]>[0]> = { index };
      if (change.up !== undefined) {
        data.flags = change.up ? { up: true } : {};
        data.change = { up: true };
      }
      await this.#call(op, ns, (s) => s.setLink(data, attrs, { timeout: TIMEOUT_MS }));
    });
    if (renamed) this.#unlearn(ns, name);
  }

  async moveLink(ns: Netns, name: string, target: Netns, newName?: string): Promise<void> {
    const op = `move link "${name}"`;
    const index = await this.#index(ns, name, op);
    this.#unlearn(ns, name);
    this.#unlearn(target, newName ?? name);
    const fd = openNetns(target);
    try {
      const attrs: NonNullable<Parameters<RtNetlinkSocket["setLink"]>[1]> = { netNsFd: fd };
      if (newName !== undefined) attrs.ifname = newName;
      await this.#call(op, ns, (s) => s.setLink({ index }, attrs, { timeout: TIMEOUT_MS }));
    } finally {
      fs.closeSync(fd);
    }
  }

  async deleteLink(ns: Netns, name: string): Promise<boolean> {
    const l = await this.getLink(ns, name);
    if (l === undefined) return false;
    this.#unlearn(ns, name);
    try {
      await this.#call(`delete link "${name}"`, ns, (s) =>
        s.delLink({ index: l.index }, undefined, { timeout: TIMEOUT_MS }),
      );
      return true;
    } catch (e) {
      if (e instanceof KernelError && e.missing) return false;
      throw e;
    }
  }

  // ---- addresses --------------------------------------------------------------------------------

  async listAddresses(ns: Netns, dev?: string): Promise<Address[]> {
    const links = new Map((await this.listLinks(ns)).map((l) => [l.index, l.name]));
    const msgs = await this.#call("list addresses", ns, (s) =>
      s.getAddresses(undefined, undefined, { timeout: TIMEOUT_MS }),
    );
    const out: Address[] = [];
    for (const m of msgs) {
      const bytes = m.attrs.local ?? m.attrs.address;
      const name = links.get(m.data.index ?? -1);
      if (bytes === undefined || name === undefined || (dev !== undefined && name !== dev)) continue;
      const a: Address = { cidr: `${formatIp(ipFromBytes(bytes))}/${m.data.prefixlen ?? 0}`, dev: name };
      if (m.attrs.flags?.noprefixroute === true) a.noprefixroute = true;
      const sc = m.data.scope ?? 0;
      a.scope = sc === 253 ? "link" : sc === 254 ? "host" : "global";
      out.push(a);
    }
    return out;
  }

  async addAddress(ns: Netns, addr: Address): Promise<void> {
    const op = `add address ${addr.cidr} to "${addr.dev}"`;
    const c = parseCidr(addr.cidr);
    const b = ipBytes(c.ip);
    const attrs: NonNullable<Parameters<RtNetlinkSocket["newAddress"]>[1]> = { local: b, address: b };
    if (addr.noprefixroute === true) attrs.flags = { noprefixroute: true };
    const scope = addr.scope === "link" ? 253 : addr.scope === "host" ? 254 : 0;
    await this.#byIndex(ns, addr.dev, op, (index) =>
      this.#call(op, ns, (s) =>
        s.newAddress({ family: c.ip.family === 4 ? 2 : 10, prefixlen: c.prefix, index, scope }, attrs, {
          flags: CREATE_EXCL,
          timeout: TIMEOUT_MS,
        }),
      ),
    );
  }

  async deleteAddress(ns: Netns, addr: Address): Promise<boolean> {
    const link = await this.getLink(ns, addr.dev);
    if (link === undefined) return false;
    const c = parseCidr(addr.cidr);
    const b = ipBytes(c.ip);
    try {
      await this.#call(`delete address ${addr.cidr}`, ns, (s) =>
        s.delAddress(
          { family: c.ip.family === 4 ? 2 : 10, prefixlen: c.prefix, index: link.index },
          { local: b, address: b },
          { timeout: TIMEOUT_MS },
        ),
      );
      return true;
    } catch (e) {
      if (e instanceof KernelError && e.missing) return false;
      throw e;
    }
  }

  // ---- routes -----------------------------------------------------------------------------------

  async listRoutes(ns: Netns, table: number | "all" = RT_TABLE_MAIN): Promise<Route[]> {
    const links = new Map((await this.listLinks(ns)).map((l) => [l.index, l.name]));
    const msgs = await this.#call("list routes", ns, (s) => s.getRoutes(undefined, undefined, { timeout: TIMEOUT_MS }));
    const out: Route[] = [];
    for (const m of msgs) {
      const t = m.attrs.table ?? m.data.table ?? RT_TABLE_MAIN;
      if (m.data.type !== "UNICAST" || t === RT_TABLE_LOCAL) continue;
      if (table !== "all" && t !== table) continue;
      const fam = m.data.family === 10 ? 6 : 4;
      const dst = m.attrs.dst === undefined ? (fam === 4 ? "0.0.0.0" : "::") : formatIp(ipFromBytes(m.attrs.dst));
      if (fam === 6 && (dst.startsWith("fe80:") || dst.startsWith("ff00:"))) continue;
      const r: Route = { dst: `${dst}/${m.data.dstLen ?? 0}`, scope: scopeName(m.data.scope), table: t };
      if (m.attrs.gateway !== undefined) r.gw = formatIp(ipFromBytes(m.attrs.gateway));
      const dev = links.get(m.attrs.oif ?? -1);
      if (dev !== undefined) r.dev = dev;
      if (m.attrs.prefsrc !== undefined) r.src = formatIp(ipFromBytes(m.attrs.prefsrc));
      if (m.attrs.priority !== undefined) r.metric = m.attrs.priority;
      if (((m.data.flags?.__unknown ?? 0) & RTNH_F_ONLINK) !== 0) r.onlink = true;
      r.proto =
        m.data.protocol === "KERNEL"
          ? "kernel"
          : m.data.protocol === "BOOT"
            ? "boot"
            : m.data.protocol === "STATIC"
              ? "static"
              : "other";
      out.push(r);
    }
    return out;
  }

  #routeMessage(
    route: Route,
    oif: number | undefined,
  ): [
    NonNullable<Parameters<RtNetlinkSocket["newRoute"]>[0]>,
    NonNullable<Parameters<RtNetlinkSocket["newRoute"]>[1]>,
  ] {
    const c = parseCidr(route.dst);
    const table = route.table ?? RT_TABLE_MAIN;
    const scope = route.scope ?? (route.gw === undefined ? "link" : "global");
    const data: NonNullable<Parameters<RtNetlinkSocket["newRoute"]>[0]> = {
      family: familyOf(route.dst),
      dstLen: c.prefix,
      table: table < 256 ? table : 252,
      protocol: "BOOT",
      scope: SCOPES[scope] as "UNIVERSE",
      type: "UNICAST",
    };
    if (route.onlink === true) data.flags = { __unknown: RTNH_F_ONLINK };
    const attrs: NonNullable<Parameters<RtNetlinkSocket["newRoute"]>[1]> = { table };
    if (c.prefix > 0) attrs.dst = ipBytes(c.ip);
    if (route.gw !== undefined) attrs.gateway = ipBytes(parseIp(route.gw));
    if (oif !== undefined) attrs.oif = oif;
    if (route.src !== undefined) attrs.prefsrc = ipBytes(parseIp(route.src));
    if (route.metric !== undefined) attrs.priority = route.metric;
    return [data, attrs];
  }

  #withOif(ns: Netns, route: Route, op: string, f: (oif: number | undefined) => Promise<void>): Promise<void> {
    return route.dev === undefined ? f(undefined) : this.#byIndex(ns, route.dev, op, f);
  }

  async addRoute(ns: Netns, route: Route): Promise<void> {
    const op = `add route ${route.dst}${route.gw === undefined ? "" : ` via ${route.gw}`}${route.dev === undefined ? "" : ` dev ${route.dev}`}`;
    await this.#withOif(ns, route, op, async (oif) => {
      const [data, attrs] = this.#routeMessage(route, oif);
      await this.#call(op, ns, (s) => s.newRoute(data, attrs, { flags: CREATE_EXCL, timeout: TIMEOUT_MS }));
    });
  }

  async replaceRoute(ns: Netns, route: Route): Promise<void> {
    const op = `replace route ${route.dst}`;
    await this.#withOif(ns, route, op, async (oif) => {
      const [data, attrs] = this.#routeMessage(route, oif);
      await this.#call(op, ns, (s) => s.newRoute(data, attrs, { flags: CREATE_REPLACE, timeout: TIMEOUT_MS }));
    });
  }

  async deleteRoute(ns: Netns, route: Route): Promise<boolean> {
    const op = `delete route ${route.dst}`;
    const dev = route.dev === undefined ? undefined : await this.getLink(ns, route.dev);
    if (route.dev !== undefined && dev === undefined) return false;
    const [data, attrs] = this.#routeMessage(route, dev?.index);
    data.scope = "NOWHERE";
    delete data.protocol;
    if (route.metric === undefined) delete attrs.priority;
    try {
      await this.#call(op, ns, (s) => s.delRoute(data, attrs, { timeout: TIMEOUT_MS }));
      return true;
    } catch (e) {
      if (e instanceof KernelError && e.missing) return false;
      throw e;
    }
  }

  // ---- rules ------------------------------------------------------------------------------------

  async listRules(ns: Netns): Promise<Rule[]> {
    // IPv4 rules only: tcnp's policy routing is IPv4.
    const out: Rule[] = [];
    for (const family of [2]) {
      const msgs = await this.#call("list rules", ns, (s) =>
        s.getRules({ family }, undefined, { timeout: TIMEOUT_MS }),
      );
      for (const m of msgs) {
        const r: Rule = { priority: m.attrs.priority ?? 0, table: m.attrs.table ?? m.data.table ?? 0 };
        if (m.attrs.iifname !== undefined) r.iif = m.attrs.iifname;
        if (m.attrs.oifname !== undefined) r.oif = m.attrs.oifname;
        if (m.attrs.src !== undefined) r.src = `${formatIp(ipFromBytes(m.attrs.src))}/${m.data.srcLen ?? 0}`;
        if (m.attrs.dst !== undefined) r.dst = `${formatIp(ipFromBytes(m.attrs.dst))}/${m.data.dstLen ?? 0}`;
        if (m.attrs.fwmark !== undefined) r.fwmark = m.attrs.fwmark;
        if (m.attrs.fwmask !== undefined && m.attrs.fwmark !== undefined) r.fwmask = m.attrs.fwmask;
        out.push(r);
      }
    }
    return out;
  }

  #ruleMessage(
    rule: Rule,
  ): [NonNullable<Parameters<RtNetlinkSocket["newRule"]>[0]>, NonNullable<Parameters<RtNetlinkSocket["newRule"]>[1]>] {
    const fam = rule.src?.includes(":") === true || rule.dst?.includes(":") === true ? 10 : 2;
    const data: NonNullable<Parameters<RtNetlinkSocket["newRule"]>[0]> = {
      family: fam,
      action: "toTbl",
      table: rule.table < 256 ? rule.table : 252,
    };
    const attrs: NonNullable<Parameters<RtNetlinkSocket["newRule"]>[1]> = {
      priority: rule.priority,
      table: rule.table,
    };
    if (rule.iif !== undefined) attrs.iifname = rule.iif;
    if (rule.oif !== undefined) attrs.oifname = rule.oif;
    if (rule.src !== undefined) {
      const c = parseCidr(rule.src.includes("/") ? rule.src : `${rule.src}/${fam === 2 ? 32 : 128}`);
      data.srcLen = c.prefix;
      attrs.src = ipBytes(c.ip);
    }
    if (rule.dst !== undefined) {
      const c = parseCidr(rule.dst.includes("/") ? rule.dst : `${rule.dst}/${fam === 2 ? 32 : 128}`);
      data.dstLen = c.prefix;
      attrs.dst = ipBytes(c.ip);
    }
    if (rule.fwmark !== undefined) attrs.fwmark = rule.fwmark;
    if (rule.fwmask !== undefined) attrs.fwmask = rule.fwmask;
    return [data, attrs];
  }

  async addRule(ns: Netns, rule: Rule): Promise<void> {
    const [data, attrs] = this.#ruleMessage(rule);
    await this.#call(`add rule priority ${rule.priority}`, ns, (s) =>
      s.newRule(data, attrs, { flags: CREATE_EXCL, timeout: TIMEOUT_MS }),
    );
  }

  async deleteRule(ns: Netns, rule: Rule): Promise<boolean> {
    const [data, attrs] = this.#ruleMessage(rule);
    try {
      await this.#call(`delete rule priority ${rule.priority}`, ns, (s) =>
        s.delRule(data, attrs, { timeout: TIMEOUT_MS }),
      );
      return true;
    } catch (e) {
      if (e instanceof KernelError && e.missing) return false;
      throw e;
    }
  }

  // ---- neighbours -------------------------------------------------------------------------------

  async listNeighbours(ns: Netns, opts?: { proxy?: boolean }): Promise<Neighbour[]> {
    const links = new Map((await this.listLinks(ns)).map((l) => [l.index, l.name]));
    const proxy = opts?.proxy === true;
    const msgs = await this.#call("list neighbours", ns, (s) =>
      s.getNeighbors(proxy ? { family: 2, flags: { proxy: true } } : { family: 2 }, undefined, { timeout: TIMEOUT_MS }),
    );
    const out: Neighbour[] = [];
    for (const m of msgs) {
      const dev = links.get(m.data.ifindex ?? -1);
      if (dev === undefined || m.attrs.dst === undefined) continue;
      if ((m.data.flags?.proxy === true) !== proxy) continue;
      const n: Neighbour = { dev, ip: formatIp(ipFromBytes(m.attrs.dst)) };
      if (m.attrs.lladdr !== undefined && m.attrs.lladdr.length === 6) n.mac = formatMac(m.attrs.lladdr);
      if (m.data.state?.permanent === true) n.permanent = true;
      if (proxy) n.proxy = true;
      out.push(n);
    }
    return out;
  }

  async setNeighbour(ns: Netns, n: Neighbour): Promise<void> {
    const op = `set neighbour ${n.ip} on "${n.dev}"`;
    const attrs: NonNullable<Parameters<RtNetlinkSocket["newNeighbor"]>[1]> = { dst: ipBytes(parseIp(n.ip)) };
    if (n.mac !== undefined) attrs.lladdr = macBytes(n.mac);
    await this.#byIndex(ns, n.dev, op, async (ifindex) => {
      const data: NonNullable<Parameters<RtNetlinkSocket["newNeighbor"]>[0]> = {
        family: familyOf(n.ip),
        ifindex,
        state: n.permanent === false ? { reachable: true } : { permanent: true },
      };
      if (n.proxy === true) data.flags = { proxy: true };
      await this.#call(op, ns, (s) => s.newNeighbor(data, attrs, { flags: CREATE_REPLACE, timeout: TIMEOUT_MS }));
    });
  }

  async deleteNeighbour(ns: Netns, n: Neighbour): Promise<boolean> {
    const link = await this.getLink(ns, n.dev);
    if (link === undefined) return false;
    const data: NonNullable<Parameters<RtNetlinkSocket["delNeighbor"]>[0]> = {
      family: familyOf(n.ip),
      ifindex: link.index,
    };
    if (n.proxy === true) data.flags = { proxy: true };
    try {
      await this.#call(`delete neighbour ${n.ip}`, ns, (s) =>
        s.delNeighbor(data, { dst: ipBytes(parseIp(n.ip)) }, { timeout: TIMEOUT_MS }),
      );
      return true;
    } catch (e) {
      if (e instanceof KernelError && e.missing) return false;
      throw e;
    }
  }

  // ---- sysctls ----------------------------------------------------------------------------------

  readSysctl(ns: Netns, key: string): string | undefined {
    const file = `/proc/sys/${sysctlPath(key)}`;
    return withNetns(ns, () => {
      try {
        return fs.readFileSync(file, "utf8").trim();
      } catch {
        return undefined;
      }
    });
  }

  writeSysctl(ns: Netns, key: string, value: string): void {
    const file = `/proc/sys/${sysctlPath(key)}`;
    withNetns(ns, () => {
      try {
        fs.writeFileSync(file, value);
      } catch (e) {
        throw new KernelError(
          `write sysctl ${sysctlPath(key)}=${value}`,
          ns,
          (e as NodeJS.ErrnoException).code ?? "EIO",
          { cause: e },
        );
      }
    });
  }

  // ---- iptables ---------------------------------------------------------------------------------

  #iptables(ns: Netns, argv: string[], input: string | undefined, op: string): string {
    const r = withNetns(ns, () => spawnSync(argv[0]!, argv.slice(1), { input, encoding: "utf8", timeout: 30_000 }));
    if (r.error !== undefined) {
      throw new KernelError(op, ns, (r.error as NodeJS.ErrnoException).code ?? "EIO", {
        cause: r.error,
        detail: `${argv[0]} could not be run`,
      });
    }
    if (r.status !== 0)
      throw new KernelError(op, ns, "EIPTABLES", { detail: r.stderr.trim().split("\n").slice(0, 3).join("; ") });
    return r.stdout;
  }

  #save(ns: Netns, tables: IptablesTable[]): Map<string, IptablesDump> {
    const out = new Map<string, IptablesDump>();
    for (const t of tables) {
      const parsed = parseIptablesSave(
        this.#iptables(ns, ["iptables-save", "-t", t], undefined, `read iptables table ${t}`),
      );
      out.set(t, parsed.get(t) ?? new Map());
    }
    return out;
  }

  async applyIptables(ns: Netns, set: IptablesRuleSet): Promise<void> {
    const tables = [...new Set([...set.chains.map((c) => c.table), ...set.jumps.map((j) => j.table)])];
    const text = applyText(set, this.#save(ns, tables));
    this.#iptables(ns, ["iptables-restore", "--noflush", "-w", "10"], text, "apply iptables rules");
  }

  async deleteIptables(ns: Netns, set: IptablesRuleSet): Promise<void> {
    const tables = [...new Set([...set.chains.map((c) => c.table), ...set.jumps.map((j) => j.table)])];
    const text = deleteText(set, this.#save(ns, tables));
    if (text !== "") this.#iptables(ns, ["iptables-restore", "--noflush", "-w", "10"], text, "delete iptables rules");
  }

  async listIptables(ns: Netns, table: IptablesTable): Promise<IptablesDump> {
    return this.#save(ns, [table]).get(table) ?? new Map();
  }

  netDevicesAt(sysfsDir: string): string[] {
    const names = (d: string): string[] => {
      try {
        return fs.readdirSync(d);
      } catch {
        return [];
      }
    };
    const direct = names(`${sysfsDir}/net`);
    if (direct.length > 0) return direct;
    // virtio-net NICs in VMs hang their net/ under a virtioN child of the PCI device.
    return names(sysfsDir)
      .filter((n) => n.startsWith("virtio"))
      .flatMap((v) => names(`${sysfsDir}/${v}/net`));
  }

  // ---- announcements ----------------------------------------------------------------------------

  async announce(ns: Netns, dev: string, ip: string): Promise<void> {
    const link = await this.getLink(ns, dev);
    if (link === undefined) throw new KernelError(`announce ${ip}`, ns, "ENODEV", { detail: `no link "${dev}"` });
    const addr = parseIp(ip);
    if (addr.family !== 4) return;
    withNetns(ns, () => {
      try {
        tcnpNative().sendGarp(link.index, macBytes(link.mac), ipBytes(addr), this.#longLived);
      } catch (e) {
        throw new KernelError(`announce ${ip} on "${dev}"`, ns, (e as NodeJS.ErrnoException).code ?? "EIO", {
          cause: e,
        });
      }
    });
  }
}
