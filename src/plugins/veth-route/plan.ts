// veth-route's kernel work as values: a veth per pod, the pod's /32 behind a link-local gateway,
// the host route to the pod and a proxy-ARP entry that publishes it on the VM's uplink.
import type { CniDns, CniResult } from "../../cni/result.js";
import type { Step, Teardown } from "../../kernel/plan.js";
import { HOST, type Netns } from "../../kernel/types.js";
import type { AttachmentPlan } from "../attachment.js";
import type { Expectation } from "../expect.js";

/** The pod's gateway: link-local, held by the host as a /32 (never the metadata address's /16). */
export const GATEWAY = "169.254.1.1";

/** How the host answers for GATEWAY: a dummy0 holding it, or proxy ARP on each host veth. */
export type GatewayHolder = "dummy" | "proxy-arp";

export interface VethRouteInput {
  hostVeth: string;
  hostMac: string;
  podNetns: Netns;
  podIfname: string;
  podMac: string;
  podIp: string;
  mtu: number;
  /** The VM's interface on the pod's Neutron network; absent: nothing is published. */
  uplink?: string;
  /** Destinations routed via the gateway (IPAM routes; 0.0.0.0/0 by default). */
  routes: string[];
  holder: GatewayHolder;
  dns?: CniDns;
}

function steps(i: VethRouteInput): Step[] {
  const out: Step[] = [
    { op: "writeSysctl", ns: HOST, key: "net.ipv4.ip_forward", value: "1", keep: true },
    {
      op: "createVeth",
      ns: HOST,
      spec: {
        name: i.hostVeth,
        mac: i.hostMac,
        mtu: i.mtu,
        peer: { name: i.podIfname, netns: i.podNetns, mac: i.podMac, mtu: i.mtu },
      },
    },
  ];
  if (i.holder === "proxy-arp") {
    out.push(
      { op: "writeSysctl", ns: HOST, key: `net/ipv4/conf/${i.hostVeth}/proxy_arp`, value: "1" },
      // Answer at once, not after up to 0.8 s (the default proxy_delay).
      { op: "writeSysctl", ns: HOST, key: `net/ipv4/neigh/${i.hostVeth}/proxy_delay`, value: "0" },
    );
  }
  // All mix pods share the VM's Neutron port, so Neutron's port security cannot tell them apart: the
  // VM drops what this veth sends from any source but the pod's own address (strict reverse path).
  out.push({ op: "writeSysctl", ns: HOST, key: `net/ipv4/conf/${i.hostVeth}/rp_filter`, value: "1" });
  out.push(
    { op: "setLink", ns: HOST, name: i.hostVeth, change: { up: true } },
    { op: "addRoute", ns: HOST, route: { dst: `${i.podIp}/32`, dev: i.hostVeth, scope: "global" } },
    { op: "setLink", ns: i.podNetns, name: "lo", change: { up: true } },
    { op: "addAddress", ns: i.podNetns, addr: { cidr: `${i.podIp}/32`, dev: i.podIfname } },
    { op: "setLink", ns: i.podNetns, name: i.podIfname, change: { up: true } },
    { op: "addRoute", ns: i.podNetns, route: { dst: `${GATEWAY}/32`, dev: i.podIfname, scope: "link" } },
    // A permanent neighbour: no ARP for the gateway, so arp_ignore on the host cannot break it.
    { op: "setNeighbour", ns: i.podNetns, neigh: { dev: i.podIfname, ip: GATEWAY, mac: i.hostMac, permanent: true } },
    ...i.routes.map((dst): Step => ({ op: "addRoute", ns: i.podNetns, route: { dst, gw: GATEWAY, dev: i.podIfname } })),
  );
  if (i.uplink !== undefined) {
    out.push(
      // The uplink answers ARP for the pod by proxy: at once, not after up to 0.8 s (node-wide, kept).
      { op: "writeSysctl", ns: HOST, key: `net/ipv4/neigh/${i.uplink}/proxy_delay`, value: "0", keep: true },
      { op: "setNeighbour", ns: HOST, neigh: { dev: i.uplink, ip: i.podIp, proxy: true } },
      { op: "announce", ns: HOST, dev: i.uplink, ip: i.podIp },
    );
  }
  return out;
}

function expectations(i: VethRouteInput): Expectation[] {
  const pod = i.podNetns;
  const out: Expectation[] = [
    {
      fact: { kind: "sysctl", ns: HOST, key: "net.ipv4.ip_forward", value: "1" },
      code: "host-forwarding",
      severity: "error",
      why: "the VM does not forward the pod's traffic.",
    },
    {
      fact: { kind: "link", ns: HOST, name: i.hostVeth, up: true, mac: i.hostMac, linkKind: "veth" },
      code: "host-veth",
      severity: "error",
      why: "the pod is cut off from its VM and from everything beyond it.",
    },
    {
      fact: { kind: "route", ns: HOST, route: { dst: `${i.podIp}/32`, dev: i.hostVeth } },
      code: "host-route",
      severity: "error",
      why: "nothing the VM forwards to the pod reaches it.",
    },
  ];
  if (i.holder === "proxy-arp") {
    out.push(
      {
        fact: { kind: "sysctl", ns: HOST, key: `net/ipv4/conf/${i.hostVeth}/proxy_arp`, value: "1" },
        code: "gateway-proxy-arp",
        severity: "error",
        why: `nothing answers the pod's ARP for its gateway ${GATEWAY}.`,
      },
      {
        fact: { kind: "sysctl", ns: HOST, key: `net/ipv4/neigh/${i.hostVeth}/proxy_delay`, value: "0" },
        code: "gateway-proxy-delay",
        severity: "warning",
        why: "the VM delays its proxy-ARP answers (up to 0.8 s).",
      },
    );
  }
  out.push({
    fact: { kind: "sysctl", ns: HOST, key: `net/ipv4/conf/${i.hostVeth}/rp_filter`, value: "1" },
    code: "anti-spoofing",
    severity: "error",
    why: "the pod can send with another pod's address (the VM no longer drops sources that are not the pod's own).",
  });
  if (i.uplink !== undefined) {
    out.push(
      {
        fact: { kind: "neighbour", ns: HOST, neigh: { dev: i.uplink, ip: i.podIp, proxy: true } },
        code: "proxy-arp",
        severity: "warning",
        why: "other VMs on the subnet cannot find the pod directly.",
      },
      {
        fact: { kind: "sysctl", ns: HOST, key: `net/ipv4/neigh/${i.uplink}/proxy_delay`, value: "0" },
        code: "uplink-proxy-delay",
        severity: "warning",
        why: "the first packet from another VM to the pod waits up to 0.8 s (the VM delays its proxy-ARP answers).",
      },
    );
  }
  out.push(
    {
      fact: { kind: "link", ns: pod, name: "lo", up: true },
      code: "pod-loopback",
      severity: "warning",
      why: "the pod cannot reach its own services on localhost.",
    },
    {
      fact: { kind: "link", ns: pod, name: i.podIfname, up: true, mac: i.podMac },
      code: "pod-interface",
      severity: "error",
      why: "the pod has no network.",
    },
    {
      fact: { kind: "address", ns: pod, dev: i.podIfname, cidr: `${i.podIp}/32` },
      code: "pod-address",
      severity: "error",
      why: "the pod does not hold its Neutron address.",
    },
    {
      fact: { kind: "route", ns: pod, route: { dst: `${GATEWAY}/32`, dev: i.podIfname, scope: "link" } },
      code: "pod-gateway-route",
      severity: "error",
      why: `the pod cannot reach its gateway ${GATEWAY}.`,
    },
    {
      fact: { kind: "neighbour", ns: pod, neigh: { dev: i.podIfname, ip: GATEWAY, mac: i.hostMac, permanent: true } },
      code: "pod-gateway-neighbour",
      severity: "warning",
      why: "the pod depends on ARP for its gateway (which arp_ignore on the host can break).",
    },
    ...i.routes.map((dst): Expectation =>
      dst === "0.0.0.0/0"
        ? {
            fact: { kind: "route", ns: pod, route: { dst, gw: GATEWAY, dev: i.podIfname } },
            code: "pod-default-route",
            severity: "error",
            why: "the pod cannot reach anything beyond its VM.",
          }
        : {
            fact: { kind: "route", ns: pod, route: { dst, gw: GATEWAY, dev: i.podIfname } },
            code: "pod-route",
            severity: "error",
            why: `the pod cannot reach ${dst}.`,
          },
    ),
  );
  return out;
}

/** DEL: the proxy entry on the uplink, the host route, then the veth (its peer goes with it). */
export function vethRouteTeardown(i: { hostVeth: string; podIp?: string; proxyLinks: readonly string[] }): Teardown[] {
  const out: Teardown[] = [];
  if (i.podIp !== undefined) {
    for (const dev of i.proxyLinks)
      out.push({ op: "deleteNeighbour", ns: HOST, neigh: { dev, ip: i.podIp, proxy: true } });
    out.push({ op: "deleteRoute", ns: HOST, route: { dst: `${i.podIp}/32`, dev: i.hostVeth } });
  }
  out.push({ op: "deleteLink", ns: HOST, name: i.hostVeth });
  return out;
}

export function planVethRoute(i: VethRouteInput): AttachmentPlan {
  const result: CniResult = {
    interfaces: [
      { name: i.hostVeth, mac: i.hostMac },
      { name: i.podIfname, mac: i.podMac, sandbox: i.podNetns },
    ],
    ips: [{ address: `${i.podIp}/32`, gateway: GATEWAY, interface: 1 }],
    routes: i.routes.map((dst) => ({ dst, gw: GATEWAY })),
  };
  if (i.dns !== undefined) result.dns = i.dns;
  return {
    steps: steps(i),
    teardown: vethRouteTeardown({
      hostVeth: i.hostVeth,
      podIp: i.podIp,
      proxyLinks: i.uplink === undefined ? [] : [i.uplink],
    }),
    expect: expectations(i),
    result,
  };
}
