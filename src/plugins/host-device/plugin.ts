// host-device (eni mode): move the pod's own Neutron NIC from the VM into the pod and back. It also
// accepts the reference plugin's configuration (device, hwaddr, kernelpath, pciBusID,
// runtimeConfig.deviceID), because it replaces that plugin in the CNI bin dir.
import { CniError, CniCode, invalidConfig } from "../../cni/errors.js";
import { isObject, type NetConf } from "../../cni/netconf.js";
import type { CniResult } from "../../cni/result.js";
import type { CniPlugin, PluginContext } from "../../cni/skel.js";
import { applyPlan } from "../../kernel/plan.js";
import { HOST, isKernelError, type Kernel } from "../../kernel/types.js";
import { tempIfname } from "../../net/names.js";
import { expectAddress, expectLink, expectRoute } from "../check.js";
import { ipamType, optionalPositiveInt, withAllocation } from "../common.js";
import type { PluginDeps } from "../deps.js";
import { AttachmentRecords, stateDirOf } from "../state.js";
import { planMoveIn } from "./plan.js";

interface HostDevRecord {
  containerId: string;
  ifname: string;
  /** The device's name in the VM before it moved. */
  device: string;
  mac: string;
}

interface DeviceKeys {
  device?: string;
  hwaddr?: string;
  kernelpath?: string;
  pciBusID?: string;
  deviceID?: string;
}

export function parseDeviceKeys(conf: NetConf): DeviceKeys {
  const out: DeviceKeys = {};
  for (const k of ["device", "hwaddr", "kernelpath", "pciBusID"] as const) {
    const v = conf.raw[k];
    if (v === undefined) continue;
    if (typeof v !== "string" || v === "") throw invalidConfig(`"${k}" must be a non-empty string`);
    out[k] = v;
  }
  if (out.kernelpath !== undefined && !out.kernelpath.startsWith("/sys/devices/")) throw invalidConfig(`"kernelpath" must be an absolute path under /sys/devices/ (got "${out.kernelpath}")`);
  if (out.hwaddr !== undefined && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(out.hwaddr)) throw invalidConfig(`"hwaddr" "${out.hwaddr}" is not a MAC address`);
  const rc = conf.runtimeConfig["deviceID"];
  if (rc !== undefined) {
    if (typeof rc !== "string") throw invalidConfig(`runtimeConfig.deviceID must be a string`);
    out.deviceID = rc;
  }
  return out;
}

/** Which VM link to move: the IPAM NIC's MAC first, else the reference keys in the reference's order. */
async function findDevice(k: Kernel, keys: DeviceKeys, ipamMac: string | undefined): Promise<string> {
  const links = await k.listLinks(HOST);
  const byMac = (mac: string, physicalOnly: boolean): string | undefined =>
    links.find((l) => l.mac === mac.toLowerCase() && l.name !== "lo" && (!physicalOnly || l.master === undefined))?.name;
  const missing = (what: string): never => {
    throw new CniError(CniCode.DeviceNotFound, `Cannot find the device ${what} in this VM`);
  };
  if (ipamMac !== undefined) return byMac(ipamMac, true) ?? missing(`with MAC ${ipamMac} (from IPAM)`);
  if (keys.deviceID !== undefined) {
    const names = k.netDevicesAt(`/sys/bus/pci/devices/${keys.deviceID}`);
    return names[0] ?? missing(`for runtimeConfig.deviceID "${keys.deviceID}"`);
  }
  if (keys.device !== undefined) return links.some((l) => l.name === keys.device) ? keys.device : missing(`"${keys.device}"`);
  if (keys.hwaddr !== undefined) return byMac(keys.hwaddr, false) ?? missing(`with hwaddr ${keys.hwaddr}`);
  if (keys.kernelpath !== undefined) return k.netDevicesAt(keys.kernelpath)[0] ?? missing(`at kernelpath "${keys.kernelpath}"`);
  if (keys.pciBusID !== undefined) return k.netDevicesAt(`/sys/bus/pci/devices/${keys.pciBusID}`)[0] ?? missing(`at pciBusID "${keys.pciBusID}"`);
  throw invalidConfig(`specify either "device", "hwaddr", "kernelpath" or "pciBusID" (or an "ipam" block with "type": "tcnp-ipam")`);
}

const hasIpam = (conf: NetConf): boolean => isObject(conf.raw["ipam"]);

export function createHostDevice(deps: PluginDeps): CniPlugin {
  const records = (ctx: PluginContext): AttachmentRecords<HostDevRecord> => new AttachmentRecords<HostDevRecord>(stateDirOf(ctx.conf, deps.env), "host-device");

  async function attach(ctx: PluginContext, k: Kernel, keys: DeviceKeys, ipam: CniResult | undefined): Promise<CniResult> {
    const device = await findDevice(k, keys, ipam?.interfaces[0]?.mac);
    const link = (await k.getLink(HOST, device))!;
    const mtu = optionalPositiveInt(ctx.conf, "mtu", 576, 65535);
    const ips = (ipam?.ips ?? []).map((i) => ({ cidr: i.address, ...(i.gateway === undefined ? {} : { gateway: i.gateway }) }));
    records(ctx).put(ctx.args.containerId, ctx.args.ifname, { containerId: ctx.args.containerId, ifname: ctx.args.ifname, device, mac: link.mac });
    try {
      await applyPlan(k, planMoveIn({
        device, tempName: tempIfname(`${ctx.args.containerId}/${ctx.args.ifname}`), podNetns: ctx.args.netns, podIfname: ctx.args.ifname,
        ips, routes: ipam?.routes ?? [], ...(mtu === undefined ? {} : { mtu }),
      }), { onWarn: (m, e) => deps.log.warn(m, { error: e }) });
    } catch (e) {
      records(ctx).delete(ctx.args.containerId, ctx.args.ifname);
      throw e;
    }
    deps.log.info("moved the NIC into the pod", { device, mac: link.mac, ips: ips.map((i) => i.cidr) });
    const gw = ips.find((i) => !i.cidr.includes(":"))?.gateway;
    const out: CniResult = {
      interfaces: [{ name: ctx.args.ifname, mac: link.mac, sandbox: ctx.args.netns, ...(mtu === undefined ? { mtu: link.mtu } : { mtu }) }],
      ips: (ipam?.ips ?? []).map((i) => ({ ...i, interface: 0 })),
      routes: (ipam?.routes ?? []).map((r) => (r.gw === undefined && gw !== undefined && !r.dst.includes(":") ? { ...r, gw } : r)),
    };
    if (ipam?.dns !== undefined) out.dns = ipam.dns;
    return out;
  }

  // Bring the NIC home under its original name: from the pod if it is there, else find it in the
  // VM by MAC (the kernel returns physical NICs to the VM when a namespace dies).
  async function restore(ctx: PluginContext, k: Kernel): Promise<Error[]> {
    const rec = records(ctx).get(ctx.args.containerId, ctx.args.ifname);
    const mac = rec?.mac ?? ctx.conf.prevResult?.interfaces.find((i) => i.name === ctx.args.ifname && i.mac !== undefined)?.mac;
    const errors: Error[] = [];
    const temp = tempIfname(`${ctx.args.containerId}/${ctx.args.ifname}`);
    try {
      let home: string | undefined;
      if (ctx.args.netns !== "" && k.netnsExists(ctx.args.netns)) {
        const inPod = (await k.getLink(ctx.args.netns, ctx.args.ifname)) ?? (mac === undefined ? undefined : (await k.listLinks(ctx.args.netns)).find((l) => l.mac === mac));
        if (inPod !== undefined && (mac === undefined || inPod.mac === mac)) {
          await k.setLink(ctx.args.netns, inPod.name, { up: false });
          await k.moveLink(ctx.args.netns, inPod.name, HOST, temp);
          home = temp;
        }
      }
      if (home === undefined && mac !== undefined) home = (await k.listLinks(HOST)).find((l) => l.mac === mac && l.master === undefined)?.name;
      if (home !== undefined) {
        const link = (await k.getLink(HOST, home))!;
        const want = rec?.device ?? (link.alias !== undefined && link.alias !== "" ? link.alias : undefined);
        let name = home;
        if (want !== undefined && want !== home) {
          // The name may be taken, also by a concurrent DEL: the VM reuses the first free ensN for each
          // hot-plug, so several pods' NICs can share an original name.
          try {
            await k.setLink(HOST, home, { up: false, name: want });
            name = want;
          } catch (e) {
            if (!isKernelError(e, "EEXIST")) throw e;
            deps.log.warn("the NIC's original name is taken; it stays under a temporary name", { name: home, wanted: want });
          }
        }
        await k.setLink(HOST, name, { alias: "" });
        deps.log.info("returned the NIC to the VM", { name, mac });
      }
    } catch (e) {
      if (!(isKernelError(e) && (e.missing || e.errno === "ENOENT_NETNS"))) errors.push(e as Error);
    }
    return errors;
  }

  return {
    async add(ctx: PluginContext): Promise<CniResult> {
      const keys = parseDeviceKeys(ctx.conf);
      const k = await deps.kernel();
      if (!k.netnsExists(ctx.args.netns)) throw new CniError(CniCode.UnknownContainer, `The pod's network namespace "${ctx.args.netns}" does not exist`);
      if ((await k.getLink(ctx.args.netns, ctx.args.ifname)) !== undefined) throw new CniError(CniCode.InvalidConfig, `Interface ${ctx.args.ifname} already exists in the pod's namespace`);
      if (!hasIpam(ctx.conf)) return attach(ctx, k, keys, undefined);
      return withAllocation(deps, ctx, (ipam) => attach(ctx, k, keys, ipam));
    },

    async del(ctx: PluginContext): Promise<void> {
      const k = await deps.kernel();
      const errors = await restore(ctx, k);
      if (hasIpam(ctx.conf)) await deps.ipam(ipamType(ctx.conf)).del(ctx);
      if (errors.length > 0) throw new CniError(CniCode.KernelFailure, `Cannot return the NIC to the VM: ${errors.map((e) => e.message).join("; ")}`);
      records(ctx).delete(ctx.args.containerId, ctx.args.ifname);
    },

    async check(ctx: PluginContext): Promise<void> {
      const prev = ctx.conf.prevResult;
      if (prev === undefined) throw new CniError(CniCode.InvalidConfig, "CHECK needs a prevResult");
      const k = await deps.kernel();
      const iface = prev.interfaces.find((i) => i.name === ctx.args.ifname && i.sandbox !== undefined);
      if (iface === undefined) throw new CniError(CniCode.CheckFailed, `prevResult has no interface ${ctx.args.ifname} in the pod`);
      await expectLink(k, ctx.args.netns, ctx.args.ifname, { up: true, ...(iface.mac === undefined ? {} : { mac: iface.mac }) });
      for (const ip of prev.ips) await expectAddress(k, ctx.args.netns, ctx.args.ifname, ip.address);
      const podRoutes = await k.listRoutes(ctx.args.netns);
      for (const r of prev.routes.filter((x) => !x.dst.includes(":"))) {
        // Routes a later plugin owns (veth-host's) are checked by it.
        if (podRoutes.some((m) => m.dst === r.dst && m.dev !== ctx.args.ifname)) continue;
        await expectRoute(k, ctx.args.netns, { dst: r.dst, ...(r.gw === undefined ? {} : { gw: r.gw }), dev: ctx.args.ifname });
      }
      if (hasIpam(ctx.conf)) await deps.ipam(ipamType(ctx.conf)).check(ctx);
    },

    async gc(ctx: PluginContext): Promise<void> {
      if (hasIpam(ctx.conf)) await deps.ipam(ipamType(ctx.conf)).gc?.(ctx);
      const valid = new Set((ctx.conf.validAttachments ?? []).map((a) => `${a.containerID}/${a.ifname}`));
      for (const r of records(ctx).list()) if (!valid.has(`${r.containerId}/${r.ifname}`)) records(ctx).delete(r.containerId, r.ifname);
    },

    async status(ctx: PluginContext): Promise<void> {
      if (hasIpam(ctx.conf)) await deps.ipam(ipamType(ctx.conf)).status?.(ctx);
    },
  };
}
