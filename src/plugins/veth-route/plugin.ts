// veth-route (mix mode): the pod's Neutron address, an extra fixed IP of the VM's port, behind a veth
// and a link-local gateway; the VM routes. See plan.ts for the kernel state it makes.
import { CniError, CniCode } from "../../cni/errors.js";
import type { CniResult } from "../../cni/result.js";
import type { CniPlugin, PluginContext } from "../../cni/skel.js";
import { applyPlan, runTeardown } from "../../kernel/plan.js";
import { HOST, isKernelError, type Kernel } from "../../kernel/types.js";
import { hostVethName } from "../../net/names.js";
import { expectAddress, expectLink, expectNeighbour, expectRoute } from "../check.js";
import { derivedMac, firstIpv4, ipamType, linkForAddress, optionalPositiveInt, optionalString, podMacFor, withAllocation } from "../common.js";
import type { PluginDeps } from "../deps.js";
import { AttachmentRecords, stateDirOf } from "../state.js";
import { GATEWAY, planVethRouteAdd, planVethRouteDel, type GatewayHolder } from "./plan.js";

interface Record_ {
  containerId: string;
  ifname: string;
  podIp: string;
  uplink?: string;
  hostVeth: string;
}

// Node-wide: hold 169.254.1.1/32 on dummy0 where the kernel has dummy links; else proxy ARP per veth.
async function ensureGatewayHolder(k: Kernel): Promise<GatewayHolder> {
  const existing = await k.getLink(HOST, "dummy0");
  if (existing === undefined) {
    try {
      await k.createLink(HOST, { name: "dummy0", kind: "dummy" });
    } catch (e) {
      if (isKernelError(e, "ENOTSUP") || isKernelError(e, "EOPNOTSUPP")) return "proxy-arp";
      if (!isKernelError(e, "EEXIST")) throw e;
    }
  } else if (existing.kind !== "dummy") {
    return "proxy-arp";
  }
  try {
    await k.addAddress(HOST, { cidr: `${GATEWAY}/32`, dev: "dummy0" });
  } catch (e) {
    if (!isKernelError(e, "EEXIST")) throw e;
  }
  await k.setLink(HOST, "dummy0", { up: true });
  return "dummy";
}

export function createVethRoute(deps: PluginDeps): CniPlugin {
  const records = (ctx: PluginContext): AttachmentRecords<Record_> => new AttachmentRecords<Record_>(stateDirOf(ctx.conf, deps.env), "veth-route");
  return {
    async add(ctx: PluginContext): Promise<CniResult> {
      const mtuConf = optionalPositiveInt(ctx.conf, "mtu", 576, 65535);
      const hostInterface = optionalString(ctx.conf, "hostInterface");
      ipamType(ctx.conf);
      const k = await deps.kernel();
      if (!k.netnsExists(ctx.args.netns)) throw new CniError(CniCode.UnknownContainer, `The pod's network namespace "${ctx.args.netns}" does not exist`);
      if ((await k.getLink(ctx.args.netns, ctx.args.ifname)) !== undefined) {
        throw new CniError(CniCode.InvalidConfig, `Interface ${ctx.args.ifname} already exists in the pod's namespace`);
      }
      return withAllocation(deps, ctx, async (ipam) => {
        const { ip } = firstIpv4(ipam, "IPAM");
        const uplink = ipam.interfaces[0]?.name ?? hostInterface ?? (await linkForAddress(k, ip));
        const uplinkLink = uplink === undefined ? undefined : await k.getLink(HOST, uplink);
        const hostVeth = hostVethName(ctx.args.containerId, ctx.args.ifname);
        const hostMac = derivedMac(`veth-route/${ctx.args.containerId}/${ctx.args.ifname}`);
        const podMac = podMacFor(ip);
        const holder = await ensureGatewayHolder(k);
        const routes = ipam.routes.length === 0 ? ["0.0.0.0/0"] : ipam.routes.filter((r) => !r.dst.includes(":")).map((r) => r.dst);
        const plan = planVethRouteAdd({
          hostVeth, hostMac, podNetns: ctx.args.netns, podIfname: ctx.args.ifname, podMac, podIp: ip,
          mtu: mtuConf ?? uplinkLink?.mtu ?? 1500, routes, holder, ...(uplinkLink === undefined ? {} : { uplink: uplinkLink.name }),
        });
        if (uplinkLink === undefined) deps.log.warn("no uplink found for the pod address: it is not published by proxy ARP", { ip });
        records(ctx).put(ctx.args.containerId, ctx.args.ifname, { containerId: ctx.args.containerId, ifname: ctx.args.ifname, podIp: ip, hostVeth, ...(uplinkLink === undefined ? {} : { uplink: uplinkLink.name }) });
        try {
          await applyPlan(k, plan, { onWarn: (m, e) => deps.log.warn(m, { error: e }) });
        } catch (e) {
          records(ctx).delete(ctx.args.containerId, ctx.args.ifname);
          throw e;
        }
        deps.log.info("pod attached", { ip, hostVeth, uplink: uplinkLink?.name, holder });
        const out: CniResult = {
          interfaces: [{ name: hostVeth, mac: hostMac }, { name: ctx.args.ifname, mac: podMac, sandbox: ctx.args.netns }],
          ips: [{ address: `${ip}/32`, gateway: GATEWAY, interface: 1 }],
          routes: routes.map((dst) => ({ dst, gw: GATEWAY })),
        };
        if (ipam.dns !== undefined) out.dns = ipam.dns;
        return out;
      });
    },

    async del(ctx: PluginContext): Promise<void> {
      const k = await deps.kernel();
      const hostVeth = hostVethName(ctx.args.containerId, ctx.args.ifname);
      const rec = records(ctx).get(ctx.args.containerId, ctx.args.ifname);
      let podIp = rec?.podIp ?? ctx.conf.prevResult?.ips.find((i) => !i.address.includes(":"))?.address.split("/")[0];
      if (podIp === undefined) podIp = (await k.listRoutes(HOST)).find((r) => r.dev === hostVeth && r.dst.endsWith("/32"))?.dst.split("/")[0];
      const proxyLinks = podIp === undefined ? [] : (await k.listNeighbours(HOST, { proxy: true })).filter((n) => n.ip === podIp).map((n) => n.dev);
      const errors = await runTeardown(k, planVethRouteDel({ hostVeth, proxyLinks, ...(podIp === undefined ? {} : { podIp }) }));
      if (errors.length > 0) throw new CniError(CniCode.KernelFailure, `Cannot remove the pod's network: ${errors.map((e) => e.message).join("; ")}`);
      await deps.ipam(ipamType(ctx.conf)).del(ctx);
      records(ctx).delete(ctx.args.containerId, ctx.args.ifname);
    },

    async check(ctx: PluginContext): Promise<void> {
      const k = await deps.kernel();
      const prev = ctx.conf.prevResult;
      if (prev === undefined) throw new CniError(CniCode.InvalidConfig, "CHECK needs a prevResult");
      const { ip } = firstIpv4(prev, "prevResult");
      const hostVeth = hostVethName(ctx.args.containerId, ctx.args.ifname);
      const hostMac = derivedMac(`veth-route/${ctx.args.containerId}/${ctx.args.ifname}`);
      const rec = records(ctx).get(ctx.args.containerId, ctx.args.ifname);
      await expectLink(k, HOST, hostVeth, { up: true, kind: "veth", mac: hostMac });
      await expectRoute(k, HOST, { dst: `${ip}/32`, dev: hostVeth });
      if (rec?.uplink !== undefined) await expectNeighbour(k, HOST, { dev: rec.uplink, ip, proxy: true });
      await expectLink(k, ctx.args.netns, ctx.args.ifname, { up: true, mac: podMacFor(ip) });
      await expectAddress(k, ctx.args.netns, ctx.args.ifname, `${ip}/32`);
      await expectRoute(k, ctx.args.netns, { dst: `${GATEWAY}/32`, dev: ctx.args.ifname, scope: "link" });
      await expectNeighbour(k, ctx.args.netns, { dev: ctx.args.ifname, ip: GATEWAY, mac: hostMac });
      for (const r of prev.routes) await expectRoute(k, ctx.args.netns, { dst: r.dst, gw: GATEWAY, dev: ctx.args.ifname });
      await deps.ipam(ipamType(ctx.conf)).check(ctx);
    },

    async gc(ctx: PluginContext): Promise<void> {
      // The attachments that are gone: remove what is left of them, then let IPAM release addresses.
      const k = await deps.kernel();
      const valid = new Set((ctx.conf.validAttachments ?? []).map((a) => hostVethName(a.containerID, a.ifname)));
      for (const r of records(ctx).list()) {
        if (valid.has(r.hostVeth)) continue;
        const proxyLinks = (await k.listNeighbours(HOST, { proxy: true })).filter((n) => n.ip === r.podIp).map((n) => n.dev);
        const errors = await runTeardown(k, planVethRouteDel({ hostVeth: r.hostVeth, podIp: r.podIp, proxyLinks }));
        if (errors.length === 0) records(ctx).delete(r.containerId, r.ifname);
      }
      await deps.ipam(ipamType(ctx.conf)).gc?.(ctx);
    },

    async status(ctx: PluginContext): Promise<void> {
      await deps.ipam(ipamType(ctx.conf)).status?.(ctx);
    },
  };
}
