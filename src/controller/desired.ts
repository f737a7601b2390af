// What the router should hold, from Neutron alone: every mix-mode pod address (an extra fixed IP of a
// VM port tagged by tcnp-ipam) routed via its VM's own address. Per-node blocks (tcnp-ipam's
// nodeBlockPrefix) become one route each; other addresses are aggregated where one VM holds a whole
// aligned block. Pure.
import {
  aggregate,
  cidrContains,
  cidrCovers,
  formatCidr,
  parseCidr,
  parseIp,
  tryParseIp,
  type Cidr,
} from "../net/ip.js";
import { blockOf, nodeIpOf, nodeOf } from "../ipam/tags.js";
import type { Port, RouterRoute } from "../openstack/types.js";

export interface DesiredRoute extends RouterRoute {
  /** Pod addresses this route serves. */
  pods: string[];
  /** The VM (Nova server) behind the next hop. */
  serverId: string;
}

export interface DesiredInput {
  /** VM ports tagged tcnp-mix. */
  vmPorts: Port[];
  /** Block reservation ports tagged tcnp-block. */
  blockPorts: Port[];
  /** Only addresses inside these are pods of ours (and only routes inside them are ours). */
  podCidrs: string[];
  aggregate: boolean;
}

export function desiredRoutes(i: DesiredInput): DesiredRoute[] {
  const pods = i.podCidrs.map(parseCidr);
  const inPods = (ip: string): boolean => {
    const a = tryParseIp(ip);
    return a !== undefined && a.family === 4 && pods.some((c) => cidrContains(c, a));
  };
  const out: DesiredRoute[] = [];
  for (const vm of [...i.vmPorts].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const nodeIp = nodeIpOf(vm);
    if (nodeIp === undefined) continue;
    const podIps = vm.fixed_ips.map((f) => f.ip_address).filter((ip) => ip !== nodeIp && inPods(ip));
    const blocks: Cidr[] = i.blockPorts
      .filter((b) => nodeOf(b) === vm.device_id)
      .map(blockOf)
      .filter((b): b is string => b !== undefined)
      .map(parseCidr);
    const loose: string[] = [];
    for (const b of blocks) {
      const inside = podIps.filter((ip) => cidrContains(b, parseIp(ip)));
      if (inside.length > 0)
        out.push({ destination: formatCidr(b), nexthop: nodeIp, pods: inside.sort(), serverId: vm.device_id });
    }
    for (const ip of podIps) if (!blocks.some((b) => cidrContains(b, parseIp(ip)))) loose.push(ip);
    const cidrs = i.aggregate
      ? aggregate(loose.map(parseIp), 24)
      : loose.map((ip) => ({ ip: parseIp(ip), prefix: 32 }));
    for (const c of cidrs) {
      out.push({
        destination: formatCidr(c),
        nexthop: nodeIp,
        pods: loose.filter((ip) => cidrContains(c, parseIp(ip))).sort(),
        serverId: vm.device_id,
      });
    }
  }
  return out;
}

/** A router route is ours when its destination lies inside the pod CIDRs and its next hop in a node subnet. */
export function isOwned(r: RouterRoute, podCidrs: string[], nodeCidrs: string[]): boolean {
  const d = parseCidr(r.destination);
  const nh = tryParseIp(r.nexthop);
  if (nh === undefined) return false;
  return podCidrs.some((p) => cidrCovers(parseCidr(p), d)) && nodeCidrs.some((n) => cidrContains(parseCidr(n), nh));
}
