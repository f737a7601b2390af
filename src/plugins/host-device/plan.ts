// host-device's kernel work as values: move the Neutron NIC from the VM into the pod under a
// temporary name (no collision window), remember its original name in the link alias, rename it,
// and configure it; the kernel announces its address when it comes up (arp_notify).
import type { CniRoute } from "../../cni/result.js";
import type { Step } from "../../kernel/plan.js";
import { HOST, type Netns } from "../../kernel/types.js";

export interface MoveInInput {
  device: string;
  tempName: string;
  podNetns: Netns;
  podIfname: string;
  mtu?: number;
  /** address/prefix as IPAM returned it, with its gateway. */
  ips: Array<{ cidr: string; gateway?: string }>;
  routes: CniRoute[];
}

export function planMoveIn(i: MoveInInput): Step[] {
  const steps: Step[] = [
    { op: "setLink", ns: HOST, name: i.device, change: { up: false, alias: i.device } },
    { op: "moveLink", ns: HOST, name: i.device, target: i.podNetns, newName: i.tempName },
    { op: "setLink", ns: i.podNetns, name: i.tempName, change: { name: i.podIfname, ...(i.mtu === undefined ? {} : { mtu: i.mtu }) } },
    // The kernel announces the address itself when the link comes up: no gratuitous ARP of ours.
    { op: "writeSysctl", ns: i.podNetns, key: `net/ipv4/conf/${i.podIfname}/arp_notify`, value: "1" },
    ...i.ips.map((ip): Step => ({ op: "addAddress", ns: i.podNetns, addr: { cidr: ip.cidr, dev: i.podIfname } })),
    { op: "setLink", ns: i.podNetns, name: "lo", change: { up: true } },
    { op: "setLink", ns: i.podNetns, name: i.podIfname, change: { up: true } },
  ];
  const v4gw = i.ips.find((x) => !x.cidr.includes(":"))?.gateway;
  for (const r of i.routes) {
    if (r.dst.includes(":")) continue;
    const gw = r.gw ?? v4gw;
    steps.push({ op: "addRoute", ns: i.podNetns, route: gw === undefined ? { dst: r.dst, dev: i.podIfname } : { dst: r.dst, gw, dev: i.podIfname } });
  }
  return steps;
}
