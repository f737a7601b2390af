// veth-host (eni mode, chained after host-device): a veth from the pod to its VM for host and
// Service traffic. See plan.ts for the routing model and why.
import { CniError, CniCode, invalidConfig } from "../../cni/errors.js";
import type { CniResult } from "../../cni/result.js";
import type { CniPlugin, PluginContext } from "../../cni/skel.js";
import { missingFrom } from "../../kernel/iptables.js";
import { applyPlan, runTeardown } from "../../kernel/plan.js";
import { HOST, type Kernel } from "../../kernel/types.js";
import { tryParseCidr } from "../../net/ip.js";
import { hostVethName, podChainName, podComment } from "../../net/names.js";
import { validateIfname } from "../../cni/env.js";
import { expectLink, expectNeighbour, expectRoute } from "../check.js";
import { derivedMac, firstIpv4, optionalPositiveInt, optionalString } from "../common.js";
import type { PluginDeps } from "../deps.js";
import { AttachmentRecords, stateDirOf } from "../state.js";
import { masqueradeSet, planVethHostAdd, planVethHostDel, podReplySet, REPLY_TABLE } from "./plan.js";

interface VethHostConfig {
  serviceCidr?: string;
  hostInterface?: string;
  containerInterface: string;
  ipMasq: boolean;
  mtu?: number;
}

interface Rec {
  containerId: string;
  ifname: string;
  hostVeth: string;
  chain: string;
}

function parseConfig(ctx: PluginContext): VethHostConfig {
  const raw = ctx.conf.raw;
  const out: VethHostConfig = { containerInterface: optionalString(ctx.conf, "containerInterface") ?? "veth0", ipMasq: false };
  const bad = validateIfname(out.containerInterface);
  if (bad !== undefined) throw invalidConfig(`"containerInterface" ${bad}`);
  if (out.containerInterface === ctx.args.ifname) throw invalidConfig(`"containerInterface" must differ from CNI_IFNAME ("${ctx.args.ifname}")`);
  const sc = optionalString(ctx.conf, "serviceCidr");
  if (sc !== undefined) {
    if (tryParseCidr(sc) === undefined) throw invalidConfig(`"serviceCidr" "${sc}" is not a CIDR`);
    out.serviceCidr = sc;
  }
  const hi = optionalString(ctx.conf, "hostInterface");
  if (hi !== undefined) out.hostInterface = hi;
  if (raw["ipMasq"] !== undefined) {
    if (typeof raw["ipMasq"] !== "boolean") throw invalidConfig(`"ipMasq" must be true or false`);
    out.ipMasq = raw["ipMasq"];
  }
  const mtu = optionalPositiveInt(ctx.conf, "mtu", 576, 65535);
  if (mtu !== undefined) out.mtu = mtu;
  return out;
}

/** The host interface (configured, else the one with the default route) and its IPv4 address. */
async function hostSide(k: Kernel, cfg: VethHostConfig): Promise<{ dev: string; ip: string; mtu: number }> {
  const dev = cfg.hostInterface ?? (await k.listRoutes(HOST)).find((r) => r.dst === "0.0.0.0/0")?.dev;
  if (dev === undefined) throw invalidConfig(`"hostInterface" is not set and this VM has no default route to take it from`);
  const link = await k.getLink(HOST, dev);
  if (link === undefined) throw invalidConfig(`"hostInterface" "${dev}" does not exist in this VM`);
  const ip = (await k.listAddresses(HOST, dev)).find((a) => !a.cidr.includes(":") && a.scope !== "host")?.cidr.split("/")[0];
  if (ip === undefined) throw invalidConfig(`"hostInterface" "${dev}" has no IPv4 address`);
  return { dev, ip, mtu: link.mtu };
}

export function createVethHost(deps: PluginDeps): CniPlugin {
  const records = (ctx: PluginContext): AttachmentRecords<Rec> => new AttachmentRecords<Rec>(stateDirOf(ctx.conf, deps.env), "veth-host");
  const names = (ctx: PluginContext, cfg: VethHostConfig) => ({
    hostVeth: hostVethName(ctx.args.containerId, cfg.containerInterface),
    hostMac: derivedMac(`veth-host/host/${ctx.args.containerId}/${cfg.containerInterface}`),
    podVethMac: derivedMac(`veth-host/pod/${ctx.args.containerId}/${cfg.containerInterface}`),
    chain: podChainName(ctx.conf.name, ctx.args.containerId, cfg.containerInterface),
    comment: podComment(ctx.args.containerId),
  });

  return {
    async add(ctx: PluginContext): Promise<CniResult> {
      const cfg = parseConfig(ctx);
      const prev = ctx.conf.prevResult;
      if (prev === undefined) throw invalidConfig("veth-host must be chained after a plugin that gives the pod its address (no prevResult)");
      const { ip: podIp } = firstIpv4(prev, "prevResult");
      const k = await deps.kernel();
      if (!k.netnsExists(ctx.args.netns)) throw new CniError(CniCode.UnknownContainer, `The pod's network namespace "${ctx.args.netns}" does not exist`);
      if ((await k.getLink(ctx.args.netns, cfg.containerInterface)) !== undefined) {
        throw new CniError(CniCode.InvalidConfig, `Interface ${cfg.containerInterface} already exists in the pod's namespace`);
      }
      const host = await hostSide(k, cfg);
      const n = names(ctx, cfg);
      records(ctx).put(ctx.args.containerId, ctx.args.ifname, { containerId: ctx.args.containerId, ifname: ctx.args.ifname, hostVeth: n.hostVeth, chain: n.chain });
      try {
        await applyPlan(k, planVethHostAdd({
          ...n, podNetns: ctx.args.netns, podVeth: cfg.containerInterface, podIp, hostIp: host.ip, hostInterface: host.dev,
          mtu: cfg.mtu ?? host.mtu, ipMasq: cfg.ipMasq, ...(cfg.serviceCidr === undefined ? {} : { serviceCidr: cfg.serviceCidr }),
        }), { onWarn: (m, e) => deps.log.warn(m, { error: e }) });
      } catch (e) {
        records(ctx).delete(ctx.args.containerId, ctx.args.ifname);
        throw e;
      }
      deps.log.info("host veth attached", { hostVeth: n.hostVeth, podIp, hostIp: host.ip, serviceCidr: cfg.serviceCidr, ipMasq: cfg.ipMasq });
      return {
        ...prev,
        interfaces: [...prev.interfaces, { name: n.hostVeth, mac: n.hostMac }, { name: cfg.containerInterface, mac: n.podVethMac, sandbox: ctx.args.netns }],
      };
    },

    async del(ctx: PluginContext): Promise<void> {
      const cfg = parseConfig(ctx);
      const k = await deps.kernel();
      const n = names(ctx, cfg);
      const errors = await runTeardown(k, planVethHostDel({ hostVeth: n.hostVeth, chain: n.chain }));
      if (errors.length > 0) throw new CniError(CniCode.KernelFailure, `Cannot remove the host veth: ${errors.map((e) => e.message).join("; ")}`);
      records(ctx).delete(ctx.args.containerId, ctx.args.ifname);
    },

    async check(ctx: PluginContext): Promise<void> {
      const cfg = parseConfig(ctx);
      const prev = ctx.conf.prevResult;
      if (prev === undefined) throw new CniError(CniCode.InvalidConfig, "CHECK needs a prevResult");
      const { ip: podIp } = firstIpv4(prev, "prevResult");
      const k = await deps.kernel();
      const host = await hostSide(k, cfg);
      const n = names(ctx, cfg);
      await expectLink(k, HOST, n.hostVeth, { up: true, kind: "veth", mac: n.hostMac });
      await expectRoute(k, HOST, { dst: `${podIp}/32`, dev: n.hostVeth });
      await expectNeighbour(k, HOST, { dev: n.hostVeth, ip: podIp, mac: n.podVethMac });
      const p = ctx.args.netns;
      await expectLink(k, p, cfg.containerInterface, { up: true, mac: n.podVethMac });
      await expectRoute(k, p, { dst: `${host.ip}/32`, dev: cfg.containerInterface, scope: "link" });
      if (cfg.serviceCidr !== undefined) await expectRoute(k, p, { dst: cfg.serviceCidr, gw: host.ip, dev: cfg.containerInterface });
      await expectRoute(k, p, { dst: "0.0.0.0/0", gw: host.ip, dev: cfg.containerInterface, table: REPLY_TABLE });
      await expectNeighbour(k, p, { dev: cfg.containerInterface, ip: host.ip, mac: n.hostMac });
      const podRules = missingFrom(podReplySet(cfg.containerInterface), new Map([["mangle", await k.listIptables(p, "mangle")]]));
      if (podRules.length > 0) throw new CniError(CniCode.CheckFailed, `In the pod: ${podRules.join("; ")}`);
      if (cfg.ipMasq) {
        const missing = missingFrom(masqueradeSet({ podIp, hostInterface: host.dev, chain: n.chain, comment: n.comment }), new Map([["nat", await k.listIptables(HOST, "nat")]]));
        if (missing.length > 0) throw new CniError(CniCode.CheckFailed, `On the host: ${missing.join("; ")}`);
      }
    },

    async gc(ctx: PluginContext): Promise<void> {
      const k = await deps.kernel();
      const valid = new Set((ctx.conf.validAttachments ?? []).map((a) => `${a.containerID}/${a.ifname}`));
      for (const r of records(ctx).list()) {
        if (valid.has(`${r.containerId}/${r.ifname}`)) continue;
        const errors = await runTeardown(k, planVethHostDel({ hostVeth: r.hostVeth, chain: r.chain }));
        if (errors.length === 0) records(ctx).delete(r.containerId, r.ifname);
      }
    },
  };
}
