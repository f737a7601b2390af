// veth-route's kernel work as values: a veth per pod, the pod's /32 behind a link-local gateway,
// the host route to the pod and a proxy-ARP entry that publishes it on the VM's uplink.
import type { Step, Teardown } from "../../kernel/plan.js";
import { HOST, type Netns } from "../../kernel/types.js";

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
}

export function planVethRouteAdd(i: VethRouteInput): Step[] {
  const steps: Step[] = [
    { op: "writeSysctl", ns: HOST, key: "net.ipv4.ip_forward", value: "1", keep: true },
    { op: "createVeth", ns: HOST, spec: { name: i.hostVeth, mac: i.hostMac, mtu: i.mtu, peer: { name: i.podIfname, netns: i.podNetns, mac: i.podMac, mtu: i.mtu } } },
  ];
  if (i.holder === "proxy-arp") {
    steps.push(
      { op: "writeSysctl", ns: HOST, key: `net/ipv4/conf/${i.hostVeth}/proxy_arp`, value: "1" },
      // Answer at once, not after up to 0.8 s (the default proxy_delay).
      { op: "writeSysctl", ns: HOST, key: `net/ipv4/neigh/${i.hostVeth}/proxy_delay`, value: "0" },
    );
  }
  steps.push(
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
    steps.push(
      { op: "setNeighbour", ns: HOST, neigh: { dev: i.uplink, ip: i.podIp, proxy: true } },
      { op: "announce", ns: HOST, dev: i.uplink, ip: i.podIp },
    );
  }
  return steps;
}

/** DEL: the proxy entries for the pod address (on every link that has one), then the veth. */
export function planVethRouteDel(i: { hostVeth: string; podIp?: string; proxyLinks: string[] }): Teardown[] {
  const out: Teardown[] = [];
  if (i.podIp !== undefined) {
    for (const dev of i.proxyLinks) out.push({ op: "deleteNeighbour", ns: HOST, neigh: { dev, ip: i.podIp, proxy: true } });
    out.push({ op: "deleteRoute", ns: HOST, route: { dst: `${i.podIp}/32`, dev: i.hostVeth } });
  }
  out.push({ op: "deleteLink", ns: HOST, name: i.hostVeth });
  return out;
}
