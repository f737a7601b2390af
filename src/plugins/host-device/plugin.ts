// host-device (eni mode): move the pod's own Neutron NIC from the VM into the pod and back. It also
// accepts the reference plugin's configuration (device, hwaddr, kernelpath, pciBusID,
// runtimeConfig.deviceID), because it replaces that plugin in the CNI bin dir.
import { CniError, CniCode, invalidConfig } from "../../cni/errors.js";
import type { NetConf } from "../../cni/netconf.js";
import type { CniPlugin } from "../../cni/skel.js";
import { HOST, type Kernel } from "../../kernel/types.js";
import { tempIfname } from "../../net/names.js";
import { attachmentPlugin, ipamTypeOf, type AttachmentPlugin } from "../attachment.js";
import { optionalPositiveInt } from "../common.js";
import type { PluginDeps } from "../deps.js";
import { planHostDevice } from "./plan.js";

export interface HostDeviceConfig {
  keys: DeviceKeys;
  ipamType?: string;
  mtu?: number;
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
  if (out.kernelpath !== undefined && !out.kernelpath.startsWith("/sys/devices/"))
    throw invalidConfig(`"kernelpath" must be an absolute path under /sys/devices/ (got "${out.kernelpath}")`);
  if (out.hwaddr !== undefined && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(out.hwaddr))
    throw invalidConfig(`"hwaddr" "${out.hwaddr}" is not a MAC address`);
  const rc = conf.runtimeConfig["deviceID"];
  if (rc !== undefined) {
    if (typeof rc !== "string") throw invalidConfig(`runtimeConfig.deviceID must be a string`);
    out.deviceID = rc;
  }
  return out;
}

/** Which VM link to move: the IPAM NIC's MAC first, else the reference keys in the reference's order. */
async function findDevice(
  k: Kernel,
  keys: DeviceKeys,
  ipamMac: string | undefined,
): Promise<{ name: string; mac: string; mtu: number }> {
  const name = await findDeviceName(k, keys, ipamMac);
  const link = await k.getLink(HOST, name);
  if (link === undefined)
    throw new CniError(CniCode.DeviceNotFound, `The device "${name}" left this VM while it was being moved`);
  return { name, mac: link.mac, mtu: link.mtu };
}

async function findDeviceName(k: Kernel, keys: DeviceKeys, ipamMac: string | undefined): Promise<string> {
  const links = await k.listLinks(HOST);
  const byMac = (mac: string, physicalOnly: boolean): string | undefined =>
    links.find((l) => l.mac === mac.toLowerCase() && l.name !== "lo" && (!physicalOnly || l.master === undefined))
      ?.name;
  const missing = (what: string): never => {
    throw new CniError(CniCode.DeviceNotFound, `Cannot find the device ${what} in this VM`);
  };
  if (ipamMac !== undefined) return byMac(ipamMac, true) ?? missing(`with MAC ${ipamMac} (from IPAM)`);
  if (keys.deviceID !== undefined) {
    const names = k.netDevicesAt(`/sys/bus/pci/devices/${keys.deviceID}`);
    return names[0] ?? missing(`for runtimeConfig.deviceID "${keys.deviceID}"`);
  }
  if (keys.device !== undefined)
    return links.some((l) => l.name === keys.device) ? keys.device : missing(`"${keys.device}"`);
  if (keys.hwaddr !== undefined) return byMac(keys.hwaddr, false) ?? missing(`with hwaddr ${keys.hwaddr}`);
  if (keys.kernelpath !== undefined)
    return k.netDevicesAt(keys.kernelpath)[0] ?? missing(`at kernelpath "${keys.kernelpath}"`);
  if (keys.pciBusID !== undefined)
    return k.netDevicesAt(`/sys/bus/pci/devices/${keys.pciBusID}`)[0] ?? missing(`at pciBusID "${keys.pciBusID}"`);
  throw invalidConfig(
    `specify either "device", "hwaddr", "kernelpath" or "pciBusID" (or an "ipam" block with "type": "tcnp-ipam")`,
  );
}

const tempName = (containerId: string, ifname: string): string => tempIfname(`${containerId}/${ifname}`);

export const hostDevice: AttachmentPlugin<HostDeviceConfig, { name: string; mac: string; mtu: number }> = {
  name: "host-device",
  parse(conf) {
    const mtu = optionalPositiveInt(conf, "mtu", 576, 65535);
    const ipamType = ipamTypeOf(conf);
    return {
      keys: parseDeviceKeys(conf),
      ...(ipamType === undefined ? {} : { ipamType }),
      ...(mtu === undefined ? {} : { mtu }),
    };
  },
  ipamType: (c) => c.ipamType,
  podInterfaces: (_c, args) => [args.ifname],
  facts: (k, c, _ctx, ipam) => findDevice(k, c.keys, c.ipamType === undefined ? undefined : ipam?.interfaces[0]?.mac),
  plan(c, device, ipam, args) {
    return planHostDevice({
      device: device.name,
      mac: device.mac,
      linkMtu: device.mtu,
      tempName: tempName(args.containerId, args.ifname),
      podNetns: args.netns,
      podIfname: args.ifname,
      ips: c.ipamType === undefined ? [] : (ipam?.ips ?? []),
      routes: c.ipamType === undefined ? [] : (ipam?.routes ?? []),
      ...(c.mtu === undefined ? {} : { mtu: c.mtu }),
      ...(c.ipamType === undefined || ipam?.dns === undefined ? {} : { dns: ipam.dns }),
    });
  },
  // No record: the NIC by its name or prevResult's MAC in the pod, else by MAC in the VM; its alias
  // holds its original name.
  async fallbackTeardown(_c, ctx) {
    const mac = ctx.conf.prevResult?.interfaces.find((i) => i.name === ctx.args.ifname && i.mac !== undefined)?.mac;
    return [
      {
        op: "returnLink",
        ns: HOST,
        from: ctx.args.netns,
        name: ctx.args.ifname,
        tempName: tempName(ctx.args.containerId, ctx.args.ifname),
        ...(mac === undefined ? {} : { mac }),
      },
    ];
  },
};

export const createHostDevice = (deps: PluginDeps): CniPlugin => attachmentPlugin(hostDevice, deps);
