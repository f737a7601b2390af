// tcnp-ipam: allocates and releases pod addresses in Neutron, as a CNI IPAM plugin. Every verb
// runs under one node-wide lock; the local store says what each container holds.
import { CniError, CniCode, tryAgainLater } from "../cni/errors.js";
import type { NetConf } from "../cni/netconf.js";
import type { CniResult } from "../cni/result.js";
import type { CniPlugin, PluginContext } from "../cni/skel.js";
import { createClients, type Clients } from "../openstack/clients.js";
import type { CredentialSources } from "../openstack/credentials.js";
import { isOpenStackError } from "../openstack/errors.js";
import type { HttpFetch } from "../openstack/http.js";
import type { NodeFetchOptions } from "../openstack/node-fetch.js";
import { FileTokenStore } from "../openstack/token-cache.js";
import type { Clock } from "../base/clock.js";
import type { Env } from "../cni/env.js";
import type { Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import type { Lock } from "../state/lock.js";
import { parseIpamConfig, type IpamConfig } from "./config.js";
import { eniAdd, eniRelease, type EniDeps } from "./eni.js";
import { forgetIdentity, resolveIdentity } from "./identity.js";
import { mixAdd, mixRelease, removeAddresses, type MixDeps } from "./mix.js";
import { blockChooser } from "./blocks.js";
import { NodeCache } from "./node-cache.js";
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
}

interface Session {
  cache: NodeCache;
  cfg: IpamConfig;
  clients: Clients;
  fetch: HttpFetch;
  store: AllocationStore;
  lock: Lock;
}

function setup(deps: IpamDeps, conf: NetConf): Session {
  const cfg = parseIpamConfig(conf, deps.sources);
  if (cfg.unknownKeys.length > 0) deps.log.warn("ignoring unknown configuration keys", { keys: cfg.unknownKeys });
  const fetchOpts: NodeFetchOptions = { timeoutMs: cfg.timeouts.apiMs };
  if (cfg.credentials.caCert !== undefined) fetchOpts.caCert = cfg.credentials.caCert;
  if (cfg.credentials.insecure !== undefined) fetchOpts.insecure = cfg.credentials.insecure;
  const fetch = deps.httpFetch(fetchOpts);
  const lock = deps.lockFor(`${cfg.stateDir}/locks`);
  const clients = createClients({
    auth: cfg.credentials.auth,
    fetch,
    clock: deps.clock,
    log: deps.log,
    timeoutMs: cfg.timeouts.apiMs,
    tokens: new FileTokenStore(`${cfg.stateDir}/tokens`),
    lock,
  });
  return {
    cfg,
    clients,
    fetch,
    lock,
    store: deps.storeFor(allocationsDir(cfg.stateDir)),
    cache: new NodeCache(cfg.stateDir),
  };
}

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

export function createIpam(deps: IpamDeps): CniPlugin {
  const mixDeps = (s: Session): MixDeps => {
    const d: MixDeps = {
      cfg: s.cfg,
      neutron: s.clients.neutron,
      store: s.store,
      clock: deps.clock,
      log: deps.log,
      cache: s.cache,
    };
    if (s.cfg.nodeBlockPrefix !== undefined) d.chooseEntry = blockChooser(s.cfg, s.clients.neutron, deps.log);
    return d;
  };
  const eniDeps = async (s: Session): Promise<EniDeps> => ({
    cfg: s.cfg,
    neutron: s.clients.neutron,
    nova: s.clients.nova,
    store: s.store,
    clock: deps.clock,
    log: deps.log,
    kernel: await deps.kernel(),
  });

  async function identity(s: Session): Promise<string> {
    const kernel = await deps.kernel();
    const id = await resolveIdentity({
      cfg: s.cfg,
      fetch: s.fetch,
      nova: s.clients.nova,
      neutron: s.clients.neutron,
      kernel,
      log: deps.log,
      readFile: deps.readFile,
    });
    deps.log.debug("identity", { serverId: id.serverId, source: id.source });
    return id.serverId;
  }

  async function release(s: Session, a: Allocation): Promise<void> {
    if (a.mode === "mix") await mixRelease(mixDeps(s), a);
    else await eniRelease(await eniDeps(s), a);
  }

  // After our own work, retry a few releases that earlier failed (Neutron was down).
  async function finishPending(s: Session, except: string): Promise<void> {
    const pending = s.store
      .list()
      .filter(
        (a) =>
          a.state !== "active" && `${a.containerId}/${a.ifname}` !== except && deps.clock.now() - a.updatedAt > 1000,
      )
      .slice(0, 5);
    for (const a of pending) {
      try {
        await release(s, a);
        deps.log.info("completed a pending release", { containerId: a.containerId, ifname: a.ifname, ip: a.ip });
      } catch (e) {
        deps.log.warn("a pending release is still pending", { containerId: a.containerId, ifname: a.ifname, error: e });
      }
    }
  }

  async function stillHeld(s: Session, a: Allocation): Promise<boolean> {
    if (a.portId === undefined || a.ip === undefined) return false;
    try {
      const p = await s.clients.neutron.getPort(a.portId);
      return p.fixed_ips.some((f) => f.ip_address === a.ip);
    } catch (e) {
      if (isOpenStackError(e, "PortNotFound")) return false;
      throw e;
    }
  }

  return {
    async add(ctx: PluginContext): Promise<CniResult> {
      const s = setup(deps, ctx.conf);
      const { containerId, ifname } = ctx.args;
      return s.lock.withLock(
        "ipam",
        async () => {
          const existing = s.store.get(containerId, ifname);
          if (existing?.state === "active" && (await stillHeld(s, existing))) {
            deps.log.info("ADD repeated for an allocated container: returning the same address", { ip: existing.ip });
            return allocationResult(existing, s.cfg);
          }
          if (existing !== undefined) await release(s, existing);
          const serverId = await identity(s);
          let a: Allocation;
          try {
            a =
              s.cfg.mode === "mix"
                ? await mixAdd(
                    mixDeps(s),
                    { containerId, ifname, serverId },
                    await findVmPorts(s.clients.neutron, await deps.kernel(), serverId, s.cfg.networks, s.cache),
                  )
                : await eniAdd(await eniDeps(s), { containerId, ifname, serverId, pod: ctx.args.args });
          } catch (e) {
            // A cached identity for a server that no longer exists: look again next time.
            if (isOpenStackError(e, "itemNotFound", 404) && /Instance/.test(e.detail)) forgetIdentity(s.cfg);
            throw e;
          }
          deps.log.info("allocated", { mode: a.mode, ip: a.ip, port: a.portId, subnet: a.subnetId });
          return allocationResult(a, s.cfg);
        },
        { timeoutMs: s.cfg.timeouts.lockMs },
      );
    },

    async del(ctx: PluginContext): Promise<void> {
      const s = setup(deps, ctx.conf);
      const { containerId, ifname } = ctx.args;
      await s.lock.withLock(
        "ipam",
        async () => {
          const a = s.store.get(containerId, ifname);
          if (a !== undefined) {
            await release(s, a);
            deps.log.info("released", { mode: a.mode, ip: a.ip, port: a.portId });
          } else {
            await releaseFromPrevResult(s, ctx);
          }
          await finishPending(s, `${containerId}/${ifname}`);
        },
        { timeoutMs: s.cfg.timeouts.lockMs },
      );
    },

    async check(ctx: PluginContext): Promise<void> {
      const s = setup(deps, ctx.conf);
      const a = s.store.get(ctx.args.containerId, ctx.args.ifname);
      if (a === undefined || a.state !== "active") {
        throw new CniError(
          CniCode.AllocationMissing,
          `No address is recorded for ${ctx.args.containerId}/${ctx.args.ifname} in ${allocationsDir(s.cfg.stateDir)}`,
        );
      }
      if (!(await stillHeld(s, a))) {
        throw new CniError(
          CniCode.AllocationMissing,
          `Address ${a.ip} of ${ctx.args.containerId}/${ctx.args.ifname} is no longer on Neutron port ${a.portId}`,
        );
      }
      const want = ctx.conf.prevResult?.ips.map((i) => i.address.split("/")[0]) ?? [];
      if (want.length > 0 && !want.includes(a.ip)) {
        throw new CniError(
          CniCode.AllocationMissing,
          `prevResult has ${want.join(", ")} but ${ctx.args.containerId}/${ctx.args.ifname} holds ${a.ip}`,
        );
      }
    },

    async gc(ctx: PluginContext): Promise<void> {
      const s = setup(deps, ctx.conf);
      const valid = new Set((ctx.conf.validAttachments ?? []).map((v) => `${v.containerID}/${v.ifname}`));
      const errors: string[] = [];
      await s.lock.withLock(
        "ipam",
        async () => {
          for (const a of s.store.list()) {
            // Only this configuration's allocations: another network on the node has its own GC.
            if (a.mode !== s.cfg.mode || !s.cfg.networks.includes(a.networkId)) continue;
            if (valid.has(`${a.containerId}/${a.ifname}`) && a.state === "active") continue;
            try {
              await release(s, a);
              deps.log.info("GC released", { containerId: a.containerId, ifname: a.ifname, ip: a.ip });
            } catch (e) {
              errors.push(`${a.containerId}/${a.ifname}: ${(e as Error).message}`);
            }
          }
        },
        { timeoutMs: s.cfg.timeouts.lockMs },
      );
      if (errors.length > 0)
        throw tryAgainLater(`GC could not release ${errors.length} allocation(s): ${errors.join("; ")}`);
    },

    async status(ctx: PluginContext): Promise<void> {
      const s = setup(deps, ctx.conf);
      try {
        await s.clients.session.token();
        await s.clients.neutron.getNetwork(s.cfg.networks[0]!);
      } catch (e) {
        throw new CniError(CniCode.PluginNotAvailable, `Cannot reach the cloud: ${(e as Error).message}`, { cause: e });
      }
    },
  };

  // No record (state lost): the prevResult says which address this container had. Release it only
  // if no other container's record holds it, so a repeated DEL never takes a reused address.
  async function releaseFromPrevResult(s: Session, ctx: PluginContext): Promise<void> {
    const ips = (ctx.conf.prevResult?.ips ?? []).map((i) => i.address.split("/")[0]!);
    if (ips.length === 0 || s.cfg.mode !== "mix") return;
    const owned = new Set(s.store.list().map((a) => a.ip));
    const mine = ips.filter((ip) => !owned.has(ip));
    if (mine.length === 0) return;
    const serverId = await identity(s);
    const vms = await findVmPorts(s.clients.neutron, await deps.kernel(), serverId, s.cfg.networks, s.cache);
    const md = mixDeps(s);
    for (const vm of vms) {
      const removed = await removeAddresses(
        md,
        vm.portId,
        (f) => mine.includes(f.ip_address) && f.ip_address !== vm.nodeIp,
      );
      if (removed.length > 0)
        deps.log.info("released from prevResult (no local record)", { ips: removed, port: vm.portId });
    }
  }
}
