// veth-host (eni mode, chained after host-device): a veth from the pod to its VM for host and
// Service traffic. See plan.ts for the routing model and why.
import { invalidConfig } from "../../cni/errors.js";
import { validateIfname, type CmdArgs } from "../../cni/env.js";
import type { NetConf } from "../../cni/netconf.js";
import type { CniPlugin } from "../../cni/skel.js";
import { HOST, type Kernel } from "../../kernel/types.js";
import { tryParseCidr } from "../../net/ip.js";
import { hostVethName, podChainName, podComment } from "../../net/names.js";
import { attachmentPlugin, type AttachmentPlugin } from "../attachment.js";
import { derivedMac, firstIpv4, optionalPositiveInt, optionalString } from "../common.js";
import type { PluginDeps } from "../deps.js";
import { planVethHost, planVethHostDel } from "./plan.js";

export interface VethHostConfig {
  serviceCidr?: string;
  hostInterface?: string;
  containerInterface: string;
  ipMasq: boolean;
  mtu?: number;
}

export function parseVethHost(conf: NetConf, args: CmdArgs): VethHostConfig {
  const raw = conf.raw;
  const out: VethHostConfig = {
    containerInterface: optionalString(conf, "containerInterface") ?? "veth0",
    ipMasq: false,
  };
  const bad = validateIfname(out.containerInterface);
  if (bad !== undefined) throw invalidConfig(`"containerInterface" ${bad}`);
  if (out.containerInterface === args.ifname)
    throw invalidConfig(`"containerInterface" must differ from CNI_IFNAME ("${args.ifname}")`);
  const sc = optionalString(conf, "serviceCidr");
  if (sc !== undefined) {
    if (tryParseCidr(sc) === undefined) throw invalidConfig(`"serviceCidr" "${sc}" is not a CIDR`);
    out.serviceCidr = sc;
  }
  const hi = optionalString(conf, "hostInterface");
  if (hi !== undefined) out.hostInterface = hi;
  if (raw["ipMasq"] !== undefined) {
    if (typeof raw["ipMasq"] !== "boolean") throw invalidConfig(`"ipMasq" must be true or false`);
    out.ipMasq = raw["ipMasq"];
  }
  const mtu = optionalPositiveInt(conf, "mtu", 576, 65535);
  if (mtu !== undefined) out.mtu = mtu;
  return out;
}

/** The host interface (configured, else the one with the default route) and its IPv4 address. */
async function hostSide(k: Kernel, cfg: VethHostConfig): Promise<{ dev: string; ip: string; mtu: number }> {
  const dev = cfg.hostInterface ?? (await k.listRoutes(HOST)).find((r) => r.dst === "0.0.0.0/0")?.dev;
  if (dev === undefined)
    throw invalidConfig(`"hostInterface" is not set and this VM has no default route to take it from`);
  const link = await k.getLink(HOST, dev);
  if (link === undefined) throw invalidConfig(`"hostInterface" "${dev}" does not exist in this VM`);
  const ip = (await k.listAddresses(HOST, dev))
    .find((a) => !a.cidr.includes(":") && a.scope !== "host")
    ?.cidr.split("/")[0];
  if (ip === undefined) throw invalidConfig(`"hostInterface" "${dev}" has no IPv4 address`);
  return { dev, ip, mtu: link.mtu };
}

const names = (conf: NetConf, args: CmdArgs, cfg: VethHostConfig) => ({
  hostVeth: hostVethName(args.containerId, cfg.containerInterface),
  hostMac: derivedMac(`veth-host/host/${args.containerId}/${cfg.containerInterface}`),
  podVethMac: derivedMac(`veth-host/pod/${args.containerId}/${cfg.containerInterface}`),
  chain: podChainName(conf.name, args.containerId, cfg.containerInterface),
  comment: podComment(args.containerId),
});

interface Facts {
  conf: NetConf;
  host: { dev: string; ip: string; mtu: number };
}

export const vethHost: AttachmentPlugin<VethHostConfig, Facts> = {
  name: "veth-host",
  parse: parseVethHost,
  ipamType: () => undefined,
  podInterfaces: (c) => [c.containerInterface],
  async facts(k, cfg, ctx, prev) {
    if (prev === undefined)
      throw invalidConfig("veth-host must be chained after a plugin that gives the pod its address (no prevResult)");
    return { conf: ctx.conf, host: await hostSide(k, cfg) };
  },
  plan(cfg, f, prev, args) {
    if (prev === undefined)
      throw invalidConfig("veth-host must be chained after a plugin that gives the pod its address (no prevResult)");
    const { ip: podIp } = firstIpv4(prev, "prevResult");
    return planVethHost(
      {
        ...names(f.conf, args, cfg),
        podNetns: args.netns,
        podVeth: cfg.containerInterface,
        podIp,
        hostIp: f.host.ip,
        hostInterface: f.host.dev,
        mtu: cfg.mtu ?? f.host.mtu,
        ipMasq: cfg.ipMasq,
        ...(cfg.serviceCidr === undefined ? {} : { serviceCidr: cfg.serviceCidr }),
      },
      prev,
    );
  },
  // No record: the names this configuration gives (a renamed network leaves its old chain behind).
  async fallbackTeardown(cfg, ctx) {
    if (cfg === undefined) return [];
    return planVethHostDel({
      ...names(ctx.conf, ctx.args, cfg),
      podNetns: ctx.args.netns,
      podVeth: cfg.containerInterface,
    });
  },
};

export const createVethHost = (deps: PluginDeps): CniPlugin => attachmentPlugin(vethHost, deps);
