// tcnp-ipam: allocates and releases pod addresses in Neutron, as a CNI IPAM plugin. Every verb
// runs under one node-wide lock; the local store says what each container holds.
import { CniError, CniCode, tryAgainLater } from "../cni/errors.js";
import { gcMinAgeMs } from "../cni/netconf.js";
import type { CniResult } from "../cni/result.js";
import type { CniPlugin, PluginContext } from "../cni/skel.js";
import { isOpenStackError, isTransient } from "../openstack/errors.js";
import { destroyPort, eniAdd, serverEniPorts } from "./eni.js";
import { forgetIdentity } from "./identity.js";
import { mixAdd, stillCooling } from "./mix.js";
import { allocationResult, IpamSession, type IpamDeps } from "./session.js";
import { allocationsDir, type Allocation } from "./store.js";
import { findVmPorts } from "./vm-port.js";

export type { IpamDeps };
export { allocationResult };

// A repeated ADD returns what the container holds; else a new allocation in the configured mode.
async function add(deps: IpamDeps, ctx: PluginContext): Promise<CniResult> {
  const s = new IpamSession(deps, ctx.conf);
  const { containerId, ifname } = ctx.args;
  if (deps.pools !== undefined) {
    const a = await deps.pools.allocate(s, { containerId, ifname });
    deps.log.info("allocated from the warm pool", { mode: a.mode, ip: a.ip, port: a.portId });
    return allocationResult(a, s.cfg);
  }
  return s.forPod(async () => {
    const existing = s.store.get(containerId, ifname);
    if (existing?.state === "active" && (await s.stillHeld(existing))) {
      deps.log.info("ADD repeated for an allocated container: returning the same address", { ip: existing.ip });
      return allocationResult(existing, s.cfg);
    }
    if (existing !== undefined) await s.release(existing);
    const serverId = await s.serverId();
    const allocate = async (): Promise<Allocation> =>
      s.cfg.mode === "mix"
        ? mixAdd(
            s.mixDeps(),
            { containerId, ifname, serverId },
            await findVmPorts(s.clients.neutron, await deps.kernel(), serverId, s.cfg.networks, s.cache),
          )
        : eniAdd(await s.eniDeps(), { containerId, ifname, serverId, pod: ctx.args.args });
    let a: Allocation;
    try {
      try {
        a = await allocate();
      } catch (e) {
        // Addresses whose cool-down is over may be all that fills the subnets: give them back, try again.
        if (!(e instanceof CniError && e.code === CniCode.AddressExhausted) || (await s.releaseDueCooling()) === 0)
          throw e;
        a = await allocate();
      }
    } catch (e) {
      // A cached identity for a server that no longer exists: look again next time.
      if (isOpenStackError(e, "itemNotFound", 404) && /Instance/.test(e.detail)) forgetIdentity(s.cfg);
      throw e;
    }
    deps.log.info("allocated", { mode: a.mode, ip: a.ip, port: a.portId, subnet: a.subnetId });
    return allocationResult(a, s.cfg);
  });
}

async function del(deps: IpamDeps, ctx: PluginContext): Promise<void> {
  const s = new IpamSession(deps, ctx.conf);
  const { containerId, ifname } = ctx.args;
  // The agent's pools take an active address back (cooling) without waiting for cloud work.
  if (deps.pools !== undefined && (await deps.pools.release(s, { containerId, ifname }))) {
    deps.log.info("released to the pool (cooling)", { containerId, ifname });
    return;
  }
  await s.forPod(async () => {
    const a = s.store.get(containerId, ifname);
    if (a !== undefined) {
      await s.release(a);
      deps.log.info("released", { mode: a.mode, ip: a.ip, port: a.portId });
    } else if (deps.pools === undefined || s.cfg.mode !== "eni") {
      await s.releaseFromPrevResult(ctx);
    } else {
      // In the agent: a port this pod may have (its record is gone) is looked for now, or — with
      // the cloud failing — by the pool's upkeep later; the DEL itself succeeds.
      try {
        await s.releaseFromPrevResult(ctx);
      } catch (e) {
        if (!isTransient(e)) throw e;
        const now = deps.clock.now();
        s.store.put({
          containerId,
          ifname,
          mode: "eni",
          state: "releasing",
          serverId: await s.serverId().catch(() => ""),
          networkId: s.cfg.networks[0]!,
          error: (e as Error).message,
          createdAt: now,
          updatedAt: now,
        });
        deps.log.warn("cannot look for this pod's port now; the agent releases it when the cloud answers", {
          error: e,
        });
      }
    }
    // Inside the node agent its pools' upkeep finishes pending work, off the pods' path.
    if (deps.pools === undefined) await s.finishPending(`${containerId}/${ifname}`);
  });
}

async function check(deps: IpamDeps, ctx: PluginContext): Promise<void> {
  const s = new IpamSession(deps, ctx.conf);
  const who = `${ctx.args.containerId}/${ctx.args.ifname}`;
  const a = s.store.get(ctx.args.containerId, ctx.args.ifname);
  if (a === undefined || a.state !== "active") {
    throw new CniError(
      CniCode.AllocationMissing,
      `No address is recorded for ${who} in ${allocationsDir(s.cfg.stateDir)}`,
    );
  }
  if (!(await s.stillHeld(a)))
    throw new CniError(CniCode.AllocationMissing, `Address ${a.ip} of ${who} is no longer on Neutron port ${a.portId}`);
  const want = ctx.conf.prevResult?.ips.map((i) => i.address.split("/")[0]) ?? [];
  if (want.length > 0 && !want.includes(a.ip))
    throw new CniError(CniCode.AllocationMissing, `prevResult has ${want.join(", ")} but ${who} holds ${a.ip}`);
}

// Releases this configuration's allocations that are not valid attachments (another network on
// the node has its own GC).
async function gc(deps: IpamDeps, ctx: PluginContext): Promise<void> {
  const s = new IpamSession(deps, ctx.conf);
  const valid = new Set((ctx.conf.validAttachments ?? []).map((v) => `${v.containerID}/${v.ifname}`));
  const errors: string[] = [];
  const minAgeMs = gcMinAgeMs(ctx.conf);
  await s.locked(async () => {
    for (const a of s.store.list()) {
      if (a.mode !== s.cfg.mode || !s.cfg.networks.includes(a.networkId)) continue;
      if (valid.has(`${a.containerId}/${a.ifname}`) && a.state === "active") continue;
      if (stillCooling(a, deps.clock.now()) || a.state === "pool") continue;
      // Decided here, under the lock: an ADD that landed after the valid set was read is young.
      if (a.state === "active" && deps.clock.now() - a.createdAt < minAgeMs) continue;
      try {
        await s.release(a);
        deps.log.info("GC released", { containerId: a.containerId, ifname: a.ifname, ip: a.ip });
      } catch (e) {
        errors.push(`${a.containerId}/${a.ifname}: ${(e as Error).message}`);
      }
    }
    if (s.cfg.mode === "eni") await collectOrphanPorts(s, valid, errors);
  });
  if (errors.length > 0)
    throw tryAgainLater(`GC could not release ${errors.length} allocation(s): ${errors.join("; ")}`);
}

// eni ports of this server that no record knows (a create whose answer was lost, a record lost
// with the disk) and whose attachment is not valid: the runtime has forgotten them, so do we.
async function collectOrphanPorts(s: IpamSession, valid: ReadonlySet<string>, errors: string[]): Promise<void> {
  const d = await s.eniDeps();
  const records = s.store.list();
  const known = new Set(records.map((a) => `${a.containerId}/${a.ifname}`));
  // A port a record names (a node agent's pool or cooling port) is not an orphan, whatever its tags say.
  const recorded = new Set(records.map((a) => a.portId));
  for (const o of await serverEniPorts(d, await s.serverId())) {
    const who = `${o.containerId}/${o.ifname}`;
    if (valid.has(who) || known.has(who) || recorded.has(o.port.id)) continue;
    try {
      await destroyPort(d, o.port.id, o.port.device_id === "" ? await s.serverId() : o.port.device_id);
      d.log.info("GC released an eni port no record knew", {
        port: o.port.id,
        containerId: o.containerId,
        ifname: o.ifname,
      });
    } catch (e) {
      errors.push(`port ${o.port.id} of ${who}: ${(e as Error).message}`);
    }
  }
}

async function status(deps: IpamDeps, ctx: PluginContext): Promise<void> {
  const s = new IpamSession(deps, ctx.conf);
  try {
    await s.clients.session.token();
    await s.clients.neutron.getNetwork(s.cfg.networks[0]!);
  } catch (e) {
    throw new CniError(CniCode.PluginNotAvailable, `Cannot reach the cloud: ${(e as Error).message}`, { cause: e });
  }
}

export function createIpam(deps: IpamDeps): CniPlugin {
  return {
    add: (ctx) => add(deps, ctx),
    del: (ctx) => del(deps, ctx),
    check: (ctx) => check(deps, ctx),
    gc: (ctx) => gc(deps, ctx),
    status: (ctx) => status(deps, ctx),
  };
}
