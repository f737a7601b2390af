// This VM's own Neutron ports, matched to host links by MAC. The VM's own address on a port is the
// one configured on the matching host interface — never the first of fixed_ips, which Neutron sorts
// as strings (10.0.0.100 before 10.0.0.25). The answer is cached and re-checked cheaply (the host
// interface still has that MAC) before each use.
import { CniError, CniCode } from "../cni/errors.js";
import { HOST, type Kernel } from "../kernel/types.js";
import type { Neutron } from "../openstack/neutron.js";
import type { CachedVmPort, NodeCache } from "./node-cache.js";
import { ENI_TAG } from "./tags.js";

export interface VmPort {
  portId: string;
  networkId: string;
  mac: string;
  serverId: string;
  /** The host interface that is this port. */
  hostIf: string;
  /** The VM's own address on it (configured on hostIf). */
  nodeIp: string;
}

async function lookUp(
  neutron: Neutron,
  kernel: Kernel,
  serverId: string,
  networks: readonly string[],
): Promise<CachedVmPort[]> {
  const ports = await neutron.listPorts({ device_id: serverId });
  const links = await kernel.listLinks(HOST);
  const addrs = await kernel.listAddresses(HOST);
  const out: CachedVmPort[] = [];
  for (const networkId of networks) {
    for (const port of ports.filter(
      (p) => p.network_id === networkId && p.device_owner.startsWith("compute:") && !p.tags.includes(ENI_TAG),
    )) {
      const link = links.find((l) => l.mac === port.mac_address.toLowerCase());
      if (link === undefined) continue;
      const local = new Set(addrs.filter((a) => a.dev === link.name).map((a) => a.cidr.split("/")[0]));
      const own = port.fixed_ips.find((f) => local.has(f.ip_address));
      if (own === undefined) continue;
      out.push({
        portId: port.id,
        networkId,
        mac: port.mac_address.toLowerCase(),
        hostIf: link.name,
        nodeIp: own.ip_address,
      });
    }
  }
  if (out.length === 0) {
    const nets = [...new Set(ports.map((p) => p.network_id))];
    throw new CniError(
      CniCode.InvalidConfig,
      `Cannot find this VM's port on ipam.neutronConf.networks [${networks.join(", ")}]: server ${serverId} has ${ports.length === 0 ? "no ports" : `ports on [${nets.join(", ")}]`}` +
        " whose MAC and address are configured on a host interface",
    );
  }
  return out;
}

/** The VM's ports on `networks`, in that order, each with its host interface and own address. */
export async function findVmPorts(
  neutron: Neutron,
  kernel: Kernel,
  serverId: string,
  networks: readonly string[],
  cache?: NodeCache,
): Promise<VmPort[]> {
  const cached = cache?.vmPorts(serverId)?.filter((p) => networks.includes(p.networkId));
  if (cached !== undefined && cached.length > 0) {
    let fresh = true;
    for (const p of cached) {
      const link = await kernel.getLink(HOST, p.hostIf);
      if (link?.mac !== p.mac) fresh = false;
    }
    if (fresh) return order(cached, networks).map((p) => ({ ...p, serverId }));
  }
  const found = await lookUp(neutron, kernel, serverId, networks);
  cache?.setVmPorts(serverId, found);
  return order(found, networks).map((p) => ({ ...p, serverId }));
}

const order = (ports: CachedVmPort[], networks: readonly string[]): CachedVmPort[] =>
  [...ports].sort((a, b) => networks.indexOf(a.networkId) - networks.indexOf(b.networkId));
