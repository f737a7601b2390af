// host-device's kernel work as values: move the Neutron NIC from the VM into the pod under a
// temporary name (no collision window), remember its original name in the link alias, rename it,
// and configure it; the kernel announces its address when it comes up (arp_notify). DEL brings the
// NIC home under its original name.
import type { CniDns, CniIp, CniResult, CniRoute } from "../../cni/result.js";
import type { Step } from "../../kernel/plan.js";
import { HOST, type Netns } from "../../kernel/types.js";
import type { AttachmentPlan } from "../attachment.js";
import type { Expectation } from "../expect.js";

export interface MoveInInput {
  device: string;
  mac: string;
  tempName: string;
  podNetns: Netns;
  podIfname: string;
  /** The configured MTU; else the NIC keeps its own (`linkMtu`). */
  mtu?: number;
  linkMtu: number;
  /** The addresses as IPAM returned them (address/prefix, gateway). */
  ips: CniIp[];
  routes: CniRoute[];
  dns?: CniDns;
}

const v4Gateway = (i: MoveInInput): string | undefined => i.ips.find((x) => !x.address.includes(":"))?.gateway;

/** The pod's IPv4 routes on the NIC, each via its own gateway or the address's. */
function podRoutes(i: MoveInInput): Array<{ dst: string; gw?: string }> {
  const gw = v4Gateway(i);
  return i.routes
    .filter((r) => !r.dst.includes(":"))
    .map((r) => {
      const via = r.gw ?? gw;
      return via === undefined ? { dst: r.dst } : { dst: r.dst, gw: via };
    });
}

export function planMoveIn(i: MoveInInput): Step[] {
  return [
    { op: "setLink", ns: HOST, name: i.device, change: { up: false, alias: i.device } },
    { op: "moveLink", ns: HOST, name: i.device, target: i.podNetns, newName: i.tempName },
    {
      op: "setLink",
      ns: i.podNetns,
      name: i.tempName,
      change: { name: i.podIfname, ...(i.mtu === undefined ? {} : { mtu: i.mtu }) },
    },
    // The kernel announces the address itself when the link comes up: no gratuitous ARP of ours.
    { op: "writeSysctl", ns: i.podNetns, key: `net/ipv4/conf/${i.podIfname}/arp_notify`, value: "1" },
    ...i.ips.map((ip): Step => ({ op: "addAddress", ns: i.podNetns, addr: { cidr: ip.address, dev: i.podIfname } })),
    { op: "setLink", ns: i.podNetns, name: "lo", change: { up: true } },
    { op: "setLink", ns: i.podNetns, name: i.podIfname, change: { up: true } },
    ...podRoutes(i).map((r): Step => ({ op: "addRoute", ns: i.podNetns, route: { ...r, dev: i.podIfname } })),
  ];
}

function expectations(i: MoveInInput): Expectation[] {
  const p = i.podNetns;
  return [
    {
      fact: { kind: "link", ns: p, name: "lo", up: true },
      code: "pod-loopback",
      severity: "warning",
      why: "the pod cannot reach its own services on localhost.",
    },
    {
      fact: { kind: "link", ns: p, name: i.podIfname, up: true, mac: i.mac },
      code: "pod-nic",
      severity: "error",
      why: `the pod's Neutron NIC (${i.mac}) is not in the pod, or not up.`,
    },
    {
      fact: { kind: "link", ns: p, name: i.podIfname, alias: i.device },
      code: "pod-nic-alias",
      severity: "warning",
      why: `the NIC's original name (${i.device}) is lost: without a record, DEL cannot give it back.`,
    },
    {
      fact: { kind: "sysctl", ns: p, key: `net/ipv4/conf/${i.podIfname}/arp_notify`, value: "1" },
      code: "pod-arp-notify",
      severity: "warning",
      why: "the NIC does not announce its address when it comes up: neighbours may keep a stale MAC.",
    },
    ...i.ips.map((ip): Expectation => ({
      fact: { kind: "address", ns: p, dev: i.podIfname, cidr: ip.address },
      code: "pod-address",
      severity: "error",
      why: "the pod does not hold its Neutron address.",
    })),
    ...podRoutes(i).map((r): Expectation =>
      r.dst === "0.0.0.0/0"
        ? {
            fact: { kind: "route", ns: p, route: { ...r, dev: i.podIfname } },
            code: "pod-default-route",
            severity: "error",
            why: "the pod cannot reach anything beyond its subnet.",
          }
        : {
            fact: { kind: "route", ns: p, route: { ...r, dev: i.podIfname } },
            code: "pod-route",
            severity: "error",
            why: `the pod cannot reach ${r.dst}.`,
          },
    ),
  ];
}

export function planHostDevice(i: MoveInInput): AttachmentPlan {
  const gw = v4Gateway(i);
  const result: CniResult = {
    interfaces: [{ name: i.podIfname, mac: i.mac, sandbox: i.podNetns, mtu: i.mtu ?? i.linkMtu }],
    ips: i.ips.map((x) => ({ ...x, interface: 0 })),
    routes: i.routes.map((r) => (r.gw === undefined && gw !== undefined && !r.dst.includes(":") ? { ...r, gw } : r)),
  };
  if (i.dns !== undefined) result.dns = i.dns;
  return {
    steps: planMoveIn(i),
    teardown: [
      {
        op: "returnLink",
        ns: HOST,
        from: i.podNetns,
        name: i.podIfname,
        mac: i.mac,
        tempName: i.tempName,
        home: i.device,
      },
    ],
    expect: expectations(i),
    result,
  };
}
