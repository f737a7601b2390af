// tcnp-ipam: allocates and releases pod addresses in Neutron, as a CNI IPAM plugin. Every verb that
// changes the node's addresses runs as the node's one ledger writer (node.ts): in the node agent, or
// in this process under the node lock; the pool (pool/pool.ts) decides, the ledger records.
import { CniError, CniCode } from "../cni/errors.js";
import { gcMinAgeMs } from "../cni/netconf.js";
import type { CniResult } from "../cni/result.js";
import type { CniPlugin, PluginContext } from "../cni/skel.js";
import { isOpenStackError } from "../openstack/errors.js";
import { forgetIdentity } from "./identity.js";
import { ledgerDir, readLedger } from "./ledger-files.js";
import { ownerKey, keyOf } from "./ledger/records.js";
import { IpamSession, type IpamDeps } from "./session.js";
import { allocationResult } from "./subnet.js";

export type { IpamDeps };
export { allocationResult };

// A repeated ADD returns what the attachment holds; else an address from the pool, or a new one.
async function add(deps: IpamDeps, ctx: PluginContext): Promise<CniResult> {
  const s = new IpamSession(deps, ctx.conf);
  const { containerId, ifname } = ctx.args;
  try {
    const a = await deps.writer.withPool(s, (p) => p.allocate({ containerId, ifname }, ctx.args.args));
    deps.log.info("allocated", { mode: a.mode, ip: a.ip, port: a.portId, subnet: a.subnetId });
    return allocationResult(a, s.cfg);
  } catch (e) {
    // A cached identity for a server that no longer exists: look again next time.
    if (isOpenStackError(e, "itemNotFound", 404) && /Instance/.test(e.detail)) forgetIdentity(s.cfg);
    throw e;
  }
}

async function del(deps: IpamDeps, ctx: PluginContext): Promise<void> {
  const s = new IpamSession(deps, ctx.conf);
  const { containerId, ifname } = ctx.args;
  await deps.writer.withPool(s, async (p) => {
    await p.release({ containerId, ifname }, ctx.conf.prevResult);
    deps.log.info("released", { containerId, ifname });
    // Without the agent, a DEL also finishes a little pending work (the agent's upkeep does it otherwise).
    await p.settle(5);
  });
}

// The record says the attachment holds an address, and Neutron still has it on its port.
async function check(deps: IpamDeps, ctx: PluginContext): Promise<void> {
  const s = new IpamSession(deps, ctx.conf);
  const o = { containerId: ctx.args.containerId, ifname: ctx.args.ifname };
  const who = `${o.containerId}/${o.ifname}`;
  const a = readLedger(s.cfg.stateDir).find((r) => keyOf(r) === ownerKey(o));
  if (a?.kind !== "pod")
    throw new CniError(CniCode.AllocationMissing, `No address is recorded for ${who} in ${ledgerDir(s.cfg.stateDir)}`);
  let held = false;
  try {
    held = (await s.clients.neutron.getPort(a.portId)).fixed_ips.some((f) => f.ip_address === a.ip);
  } catch (e) {
    if (!isOpenStackError(e, "PortNotFound")) throw e;
  }
  if (!held)
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
  await deps.writer.withPool(s, (p) => p.gc(valid, gcMinAgeMs(ctx.conf)));
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
