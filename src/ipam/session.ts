// What one tcnp-ipam configuration works with on this node: its parsed config, the cloud clients
// (a shared token store, one lock), the allocation store and the node cache, and the operations
// every verb shares. The wiring (files, HTTP, locks) comes from IpamDeps, never from here.
import type { Clock } from "../base/clock.js";
import type { Env } from "../cni/env.js";
import type { NetConf } from "../cni/netconf.js";
import type { CniResult } from "../cni/result.js";
import type { PluginContext } from "../cni/skel.js";
import type { Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import { createClients, type Clients } from "../openstack/clients.js";
import type { CredentialSources } from "../openstack/credentials.js";
import { isOpenStackError } from "../openstack/errors.js";
import type { HttpFetch } from "../openstack/http.js";
import type { NodeFetchOptions } from "../openstack/node-fetch.js";
import type { TokenStore } from "../openstack/token-cache.js";
import type { Lock } from "../state/lock.js";
import { processAlive } from "../state/files.js";
import { lockDirOf } from "../state/records.js";
import { blockChooser } from "./blocks.js";
import { parseIpamConfig, type IpamConfig } from "./config.js";
import { destroyPodPorts, eniRelease, type EniDeps } from "./eni.js";
import { resolveIdentity } from "./identity.js";
import { mixRelease, removeAddresses, stillCooling, type MixDeps } from "./mix.js";
import type { NodeCache } from "./node-cache.js";
import { allocationsDir, type Allocation, type AllocationStore } from "./store.js";
import { findVmPorts } from "./vm-port.js";

export interface IpamDeps {
  /** The kernel, created on first use. */
  kernel(): Promise<Kernel>;
  log: Logger;
  clock: Clock;
  env: Env;
  httpFetch(opts: NodeFetchOptions): HttpFetch;
  sources: CredentialSources;
  readFile(file: string): string | undefined;
  lockFor(dir: string): Lock;
  storeFor(dir: string): AllocationStore;
  tokensFor(dir: string): TokenStore;
  cacheFor(stateDir: string): NodeCache;
  /** The random source of retry jitter (Math.random when absent). */
  random?: () => number;
  /** The node agent's warm pools, when this runs inside the agent. */
  pools?: AddressPools;
  /** Inside the agent: whether another request of this process is working on (containerId, ifname). */
  busy?(containerId: string, ifname: string): boolean;
}

/** Warm pools of addresses (the node agent): an ADD takes from them without a cloud call. */
export interface AddressPools {
  /** The allocation of (containerId, ifname): the one it has, or one from the pool. */
  allocate(s: IpamSession, who: { containerId: string; ifname: string }): Promise<Allocation>;
  /** Take back a pod's active address (it cools down, then serves again); false: not one to take back here. */
  release(s: IpamSession, who: { containerId: string; ifname: string }): Promise<boolean>;
}

export class IpamSession {
  readonly cfg: IpamConfig;
  readonly clients: Clients;
  readonly fetch: HttpFetch;
  readonly store: AllocationStore;
  readonly lock: Lock;
  readonly cache: NodeCache;
  readonly conf: NetConf;
  readonly #deps: IpamDeps;
  /** The dependencies this session was made with (a pool keeps a session of its own). */
  get deps(): IpamDeps {
    return this.#deps;
  }

  constructor(deps: IpamDeps, conf: NetConf) {
    this.#deps = deps;
    this.conf = conf;
    const cfg = parseIpamConfig(conf, deps.sources);
    if (cfg.unknownKeys.length > 0) deps.log.warn("ignoring unknown configuration keys", { keys: cfg.unknownKeys });
    const fetchOpts: NodeFetchOptions = { timeoutMs: cfg.timeouts.apiMs };
    if (cfg.credentials.caCert !== undefined) fetchOpts.caCert = cfg.credentials.caCert;
    if (cfg.credentials.insecure !== undefined) fetchOpts.insecure = cfg.credentials.insecure;
    this.cfg = cfg;
    this.fetch = deps.httpFetch(fetchOpts);
    this.lock = deps.lockFor(lockDirOf(deps.env));
    this.clients = createClients({
      auth: cfg.credentials.auth,
      fetch: this.fetch,
      clock: deps.clock,
      log: deps.log,
      timeoutMs: cfg.timeouts.apiMs,
      tokens: deps.tokensFor(`${cfg.stateDir}/tokens`),
      lock: this.lock,
    });
    this.store = deps.storeFor(allocationsDir(cfg.stateDir));
    this.cache = deps.cacheFor(cfg.stateDir);
  }

  /** Run `fn` under the node-wide IPAM lock. */
  locked<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.withLock("ipam", fn, { timeoutMs: this.cfg.timeouts.lockMs });
  }

  /**
   * Run one pod's ADD or DEL: under the lock in mix mode (all pods write the VM's one port); without
   * it in eni mode, where each pod has a port of its own and Nova's attach, the NIC's arrival and a
   * detach take seconds — longer than a runtime waits, so holding the lock through them would get
   * the plugins queued behind it killed mid-ADD.
   */
  forPod<T>(fn: () => Promise<T>): Promise<T> {
    return this.cfg.mode === "mix" ? this.locked(fn) : fn();
  }

  mixDeps(): MixDeps {
    const d = this.#deps;
    const m: MixDeps = {
      cfg: this.cfg,
      neutron: this.clients.neutron,
      store: this.store,
      clock: d.clock,
      log: d.log,
      cache: this.cache,
    };
    if (d.random !== undefined) m.random = d.random;
    if (d.pools !== undefined) m.pooled = true;
    if (this.cfg.nodeBlockPrefix !== undefined) m.chooseEntries = blockChooser(this.cfg, this.clients.neutron, d.log);
    return m;
  }

  async eniDeps(): Promise<EniDeps> {
    const d = this.#deps;
    return {
      cfg: this.cfg,
      neutron: this.clients.neutron,
      nova: this.clients.nova,
      store: this.store,
      clock: d.clock,
      log: d.log,
      kernel: await d.kernel(),
    };
  }

  /** This VM's Nova server ID. */
  async serverId(): Promise<string> {
    const d = this.#deps;
    const id = await resolveIdentity({
      cfg: this.cfg,
      fetch: this.fetch,
      nova: this.clients.nova,
      neutron: this.clients.neutron,
      kernel: await d.kernel(),
      log: d.log,
      readFile: d.readFile,
    });
    d.log.debug("identity", { serverId: id.serverId, source: id.source });
    return id.serverId;
  }

  async release(a: Allocation): Promise<void> {
    if (a.mode === "mix") await mixRelease(this.mixDeps(), a);
    else await eniRelease(await this.eniDeps(), a);
  }

  /** Whether Neutron still has the allocation's address on its port. */
  async stillHeld(a: Allocation): Promise<boolean> {
    if (a.portId === undefined || a.ip === undefined) return false;
    try {
      const p = await this.clients.neutron.getPort(a.portId);
      return p.fixed_ips.some((f) => f.ip_address === a.ip);
    } catch (e) {
      if (isOpenStackError(e, "PortNotFound")) return false;
      throw e;
    }
  }

  /** After our own work, retry a few releases that earlier failed (Neutron was down). */
  async finishPending(except: string): Promise<void> {
    const { clock, log } = this.#deps;
    const pending = this.store
      .list()
      .filter(
        (a) =>
          a.state !== "active" &&
          a.state !== "pool" &&
          // with a node agent, its pool takes back cooling addresses when they are due
          !(a.state === "cooling" && (this.#deps.pools !== undefined || stillCooling(a, clock.now()))) &&
          a.mode === this.cfg.mode &&
          this.cfg.networks.includes(a.networkId) &&
          `${a.containerId}/${a.ifname}` !== except &&
          clock.now() - a.updatedAt > 1000 &&
          // an eni ADD runs without the lock: its record is in progress while its writer lives
          !(
            a.state === "adding" &&
            a.pid !== undefined &&
            (a.pid === process.pid ? (this.#deps.busy?.(a.containerId, a.ifname) ?? false) : processAlive(a.pid))
          ),
      )
      .slice(0, 5);
    for (const a of pending) {
      try {
        await this.#releaseCooled(a);
        log.info("completed a pending release", { containerId: a.containerId, ifname: a.ifname, ip: a.ip });
      } catch (e) {
        log.warn("a pending release is still pending", { containerId: a.containerId, ifname: a.ifname, error: e });
      }
    }
  }

  // eni verbs run without the node lock (mix ones hold it already): a cooling eni port is released
  // under it, as a node agent takes it to turn a due port back into a pool port.
  async #releaseCooled(a: Allocation): Promise<void> {
    if (a.mode !== "eni" || a.state !== "cooling") return this.release(a);
    await this.locked(async () => {
      const cur = this.store.get(a.containerId, a.ifname);
      if (cur?.state === "cooling" && cur.portId === a.portId) await this.release(cur);
    });
  }

  /** Give back every cooling address of this configuration that is due; how many went back. */
  async releaseDueCooling(): Promise<number> {
    const now = this.#deps.clock.now();
    let n = 0;
    for (const a of this.store.list()) {
      if (a.state !== "cooling" || stillCooling(a, now) || a.mode !== this.cfg.mode) continue;
      if (!this.cfg.networks.includes(a.networkId)) continue;
      await this.#releaseCooled(a);
      n++;
    }
    return n;
  }

  // No record (state lost): the prevResult says which address this container had. Release it only
  // if no other container's record holds it, so a repeated DEL never takes a reused address.
  async releaseFromPrevResult(ctx: PluginContext): Promise<void> {
    if (this.cfg.mode === "eni") {
      // The pod's own port knows whose it is (tags, description): find it, detach and delete it.
      const macs = (ctx.conf.prevResult?.interfaces ?? []).flatMap((i) => (i.mac === undefined ? [] : [i.mac]));
      const ids = await destroyPodPorts(
        await this.eniDeps(),
        ctx.args.containerId,
        ctx.args.ifname,
        await this.serverId(),
        macs,
        // a port a record still names (cooling in a node agent's pool) is not this DEL's to take
        new Set(this.store.list().flatMap((a) => (a.portId === undefined ? [] : [a.portId]))),
      );
      if (ids.length > 0)
        this.#deps.log.info("released eni ports found by their owner (no local record)", { ports: ids });
      return;
    }
    const ips = (ctx.conf.prevResult?.ips ?? []).map((i) => i.address.split("/")[0]!);
    if (ips.length === 0 || this.cfg.mode !== "mix") return;
    const owned = new Set(this.store.list().map((a) => a.ip));
    const mine = ips.filter((ip) => !owned.has(ip));
    if (mine.length === 0) return;
    const serverId = await this.serverId();
    const vms = await findVmPorts(
      this.clients.neutron,
      await this.#deps.kernel(),
      serverId,
      this.cfg.networks,
      this.cache,
    );
    const md = this.mixDeps();
    for (const vm of vms) {
      const removed = await removeAddresses(
        md,
        vm.portId,
        (f) => mine.includes(f.ip_address) && f.ip_address !== vm.nodeIp,
      );
      if (removed.length > 0)
        this.#deps.log.info("released from prevResult (no local record)", { ips: removed, port: vm.portId });
    }
  }
}

/** The CNI result for an allocation: its address, gateway and DNS, and the configured routes. */
export function allocationResult(a: Allocation, cfg: IpamConfig): CniResult {
  const r: CniResult = {
    interfaces:
      a.hostIfname === undefined ? [] : [{ name: a.hostIfname, ...(a.mac === undefined ? {} : { mac: a.mac }) }],
    ips:
      a.ip === undefined
        ? []
        : [{ address: `${a.ip}/${a.prefix ?? 32}`, ...(a.gateway === undefined ? {} : { gateway: a.gateway }) }],
    routes: cfg.routes.map((x) => ({ ...x })),
  };
  if (a.dns !== undefined && a.dns.length > 0) r.dns = { nameservers: [...a.dns] };
  return r;
}
