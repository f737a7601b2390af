// veth-route (mix mode): the pod's Neutron address, an extra fixed IP of the VM's port, behind a veth
// and a link-local gateway; the VM routes. See plan.ts for the kernel state it makes.
import type { CmdArgs } from "../../cni/env.js";
import type { NetConf } from "../../cni/netconf.js";
import type { CniResult } from "../../cni/result.js";
import { HOST, isKernelError, type Kernel } from "../../kernel/types.js";
import type { Logger } from "../../log/logger.js";
import { hostVethName } from "../../net/names.js";
import type { CniPlugin } from "../../cni/skel.js";
import { attachmentPlugin, requiredIpamType, type AttachmentPlugin } from "../attachment.js";
import type { PluginDeps } from "../deps.js";
import { derivedMac, firstIpv4, linkForAddress, optionalPositiveInt, optionalString, podMacFor } from "../common.js";
import { GATEWAY, planVethRoute, vethRouteTeardown, type GatewayHolder } from "./plan.js";

export interface VethRouteConfig {
  ipamType: string;
  mtu?: number;
  hostInterface?: string;
}

interface Facts {
  podIp: string;
  uplink?: { name: string; mtu: number };
  holder: GatewayHolder;
}

export function parseVethRoute(conf: NetConf): VethRouteConfig {
  const mtu = optionalPositiveInt(conf, "mtu", 576, 65535);
  const hostInterface = optionalString(conf, "hostInterface");
  return {
    ipamType: requiredIpamType(conf),
    ...(mtu === undefined ? {} : { mtu }),
    ...(hostInterface === undefined ? {} : { hostInterface }),
  };
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

const names = (args: CmdArgs): { hostVeth: string; hostMac: string } => ({
  hostVeth: hostVethName(args.containerId, args.ifname),
  hostMac: derivedMac(`veth-route/${args.containerId}/${args.ifname}`),
});

async function facts(
  k: Kernel,
  c: VethRouteConfig,
  _ctx: unknown,
  ipam: CniResult | undefined,
  log: Logger,
): Promise<Facts> {
  const { ip } = firstIpv4(ipam ?? { interfaces: [], ips: [], routes: [] }, "IPAM");
  const uplinkName = ipam?.interfaces[0]?.name ?? c.hostInterface ?? (await linkForAddress(k, ip));
  const uplink = uplinkName === undefined ? undefined : await k.getLink(HOST, uplinkName);
  if (uplink === undefined) log.warn("no uplink found for the pod address: it is not published by proxy ARP", { ip });
  return {
    podIp: ip,
    holder: await ensureGatewayHolder(k),
    ...(uplink === undefined ? {} : { uplink: { name: uplink.name, mtu: uplink.mtu } }),
  };
}

export const vethRoute: AttachmentPlugin<VethRouteConfig, Facts> = {
  name: "veth-route",
  parse: parseVethRoute,
  ipamType: (c) => c.ipamType,
  podInterfaces: (_c, args) => [args.ifname],
  facts,
  plan(c, f, ipam, args) {
    const routes =
      ipam === undefined || ipam.routes.length === 0
        ? ["0.0.0.0/0"]
        : ipam.routes.filter((r) => !r.dst.includes(":")).map((r) => r.dst);
    return planVethRoute({
      ...names(args),
      podNetns: args.netns,
      podIfname: args.ifname,
      podMac: podMacFor(f.podIp),
      podIp: f.podIp,
      mtu: c.mtu ?? f.uplink?.mtu ?? 1500,
      routes,
      holder: f.holder,
      ...(f.uplink === undefined ? {} : { uplink: f.uplink.name }),
      ...(ipam?.dns === undefined ? {} : { dns: ipam.dns }),
    });
  },
  // No record: the address from prevResult, else the host route through this pod's veth. A proxy
  // entry is removed only while no other veth routes the address: after a reuse it is the new pod's.
  async fallbackTeardown(_c, ctx, k) {
    const { hostVeth } = names(ctx.args);
    const routes = await k.listRoutes(HOST);
    const prevIp = ctx.conf.prevResult?.ips.find((i) => !i.address.includes(":"))?.address.split("/")[0];
    const podIp = prevIp ?? routes.find((r) => r.dev === hostVeth && r.dst.endsWith("/32"))?.dst.split("/")[0];
    if (podIp === undefined) return vethRouteTeardown({ hostVeth, proxyLinks: [] });
    const ownedElsewhere = routes.some((r) => r.dst === `${podIp}/32` && r.dev !== undefined && r.dev !== hostVeth);
    const proxyLinks = ownedElsewhere
      ? []
      : (await k.listNeighbours(HOST, { proxy: true })).filter((n) => n.ip === podIp).map((n) => n.dev);
    return ownedElsewhere
      ? vethRouteTeardown({ hostVeth, proxyLinks })
      : vethRouteTeardown({ hostVeth, podIp, proxyLinks });
  },
};

export const createVethRoute = (deps: PluginDeps): CniPlugin => attachmentPlugin(vethRoute, deps);
