// The doctor's judgement: compare what the kernel and Neutron hold with what the plugins plan for
// this attachment, and say what is wrong in plain words. Pure.
import { GATEWAY } from "../plugins/veth-route/plan.js";
import { REPLY_TABLE } from "../plugins/veth-host/plan.js";
import { hostVethName, podChainName } from "../net/names.js";
import { cidrContains, parseCidr, parseIp } from "../net/ip.js";
import type { Attachment, Side } from "./locate.js";
import { pluginOf } from "./locate.js";

export type Severity = "error" | "warning" | "ok";

export interface Finding {
  severity: Severity;
  code: string;
  message: string;
}

export interface NeutronFacts {
  /** The port that should hold the pod address (mix: the VM's; eni: the pod's own). */
  port?: { id: string; ips: string[]; mac: string };
  portError?: string;
  /** mix: the VM's own address (next hop). */
  nodeIp?: string;
  router?: { id: string; name: string; routes: Array<{ destination: string; nexthop: string }>; limit: number };
  /** The subnet the pod address is on. */
  subnet?: { id: string; cidr: string; enableDhcp: boolean; onRouter: boolean };
  networkProjectMatches?: boolean;
  isAdmin?: boolean;
  error?: string;
}

export type Mode = "mix" | "eni" | "unknown";

export const modeOf = (a: Attachment): Mode => (pluginOf(a, "veth-route") !== undefined ? "mix" : pluginOf(a, "host-device") !== undefined ? "eni" : "unknown");

export const podIpOf = (a: Attachment): string | undefined => a.result.ips.find((i) => !i.address.includes(":"))?.address.split("/")[0];

function mixKernel(a: Attachment, pod: Side, host: Side, ip: string, out: Finding[]): void {
  const veth = hostVethName(a.containerId, a.ifname);
  const hostLink = host.links.find((l) => l.name === veth);
  if (hostLink === undefined) out.push({ severity: "error", code: "host-veth-missing", message: `The host end of the pod's veth (${veth}) is gone: the pod is cut off from its VM and from everything beyond it.` });
  else if (!hostLink.up) out.push({ severity: "error", code: "host-veth-down", message: `The host end of the pod's veth (${veth}) is down.` });
  if (!host.routes.some((r) => r.dst === `${ip}/32` && r.dev === veth && (r.table ?? 254) === 254)) {
    out.push({ severity: "error", code: "host-route-missing", message: `The VM has no route to the pod (${ip} dev ${veth}): nothing sent to the pod reaches it.` });
  }
  if (!host.proxies.some((n) => n.ip === ip)) out.push({ severity: "warning", code: "proxy-arp-missing", message: `No proxy-ARP entry publishes ${ip} on the VM's uplink: other VMs on the subnet cannot find the pod directly.` });
  if (!pod.addresses.some((x) => x.dev === a.ifname && x.cidr === `${ip}/32`)) out.push({ severity: "error", code: "pod-address-missing", message: `The pod's ${a.ifname} does not hold ${ip}/32.` });
  const main = pod.routes.filter((r) => (r.table ?? 254) === 254);
  if (!main.some((r) => r.dst === `${GATEWAY}/32` && r.scope === "link")) out.push({ severity: "error", code: "pod-gateway-route-missing", message: `The pod has no route to its gateway (${GATEWAY} dev ${a.ifname} scope link).` });
  if (!main.some((r) => r.dst === "0.0.0.0/0" && r.gw === GATEWAY)) out.push({ severity: "error", code: "pod-default-route-missing", message: `The pod has no default route via ${GATEWAY}: it cannot reach anything beyond its VM.` });
  if (!pod.neighbours.some((n) => n.ip === GATEWAY)) out.push({ severity: "warning", code: "pod-gateway-neighbour-missing", message: `The pod has no permanent neighbour entry for ${GATEWAY}: it depends on ARP (which arp_ignore on the host can break).` });
}

function eniKernel(a: Attachment, pod: Side, host: Side, ip: string, out: Finding[]): void {
  const nic = a.result.interfaces.find((i) => i.name === a.ifname && i.sandbox !== undefined);
  const link = pod.links.find((l) => l.name === a.ifname);
  if (link === undefined) out.push({ severity: "error", code: "pod-nic-missing", message: `The pod has no ${a.ifname}: its Neutron NIC${nic?.mac === undefined ? "" : ` (${nic.mac})`} is not in the pod.` });
  else if (nic?.mac !== undefined && link.mac !== nic.mac) out.push({ severity: "error", code: "pod-nic-wrong", message: `The pod's ${a.ifname} has MAC ${link.mac}, but its Neutron port's is ${nic.mac}.` });
  if (!pod.addresses.some((x) => x.dev === a.ifname && x.cidr.startsWith(`${ip}/`))) out.push({ severity: "error", code: "pod-address-missing", message: `The pod's ${a.ifname} does not hold ${ip}.` });
  const main = pod.routes.filter((r) => (r.table ?? 254) === 254);
  if (!main.some((r) => r.dst === "0.0.0.0/0" && r.dev === a.ifname)) out.push({ severity: "error", code: "pod-default-route-missing", message: `The pod has no default route on its Neutron NIC (${a.ifname}): it cannot reach anything beyond its subnet.` });
  const vh = pluginOf(a, "veth-host");
  if (vh === undefined) return;
  const cIf = typeof vh["containerInterface"] === "string" ? vh["containerInterface"] : "veth0";
  const veth = hostVethName(a.containerId, cIf);
  if (!host.links.some((l) => l.name === veth)) out.push({ severity: "error", code: "host-veth-missing", message: `The host end of the pod's ${cIf} (${veth}) is gone: the pod cannot reach its VM or Services.` });
  if (!host.routes.some((r) => r.dst === `${ip}/32` && r.dev === veth)) out.push({ severity: "error", code: "host-route-missing", message: `The VM has no route to the pod (${ip} dev ${veth}): the VM and Service replies cannot reach the pod.` });
  if (typeof vh["serviceCidr"] === "string" && !main.some((r) => r.dst === vh["serviceCidr"] && r.dev === cIf)) {
    out.push({ severity: "error", code: "service-route-missing", message: `The pod has no route for Services (${String(vh["serviceCidr"])} via ${cIf}).` });
  }
  if (!pod.routes.some((r) => r.table === REPLY_TABLE && r.dst === "0.0.0.0/0")) out.push({ severity: "warning", code: "reply-table-missing", message: `The pod's reply table ${REPLY_TABLE} is empty: NodePort traffic to it without SNAT gets no answer.` });
  if (vh["ipMasq"] === true && host.nat !== undefined) {
    const chain = podChainName(a.network, a.containerId, cIf);
    if (!host.nat.has(chain)) out.push({ severity: "error", code: "masquerade-missing", message: `The VM does not masquerade the pod's forwarded traffic (chain ${chain} is missing): Service replies will not come back through the VM.` });
  }
}

function neutronFindings(mode: Mode, ip: string, n: NeutronFacts, out: Finding[]): void {
  if (n.error !== undefined) {
    out.push({ severity: "warning", code: "neutron-unreachable", message: `Cannot ask Neutron: ${n.error}` });
    return;
  }
  if (n.port === undefined) out.push({ severity: "error", code: "port-missing", message: `No Neutron port holds the pod: ${n.portError ?? "not found"}.` });
  else if (!n.port.ips.includes(ip)) {
    out.push({ severity: "error", code: "address-not-on-port", message: `The address ${ip} is no longer on Neutron port ${n.port.id}: Neutron drops the pod's traffic (port security) and may give the address to someone else.` });
  }
  if (mode === "mix" && n.router !== undefined) {
    const covering = n.router.routes.find((r) => cidrContains(parseCidr(r.destination), parseIp(ip)) && (n.nodeIp === undefined || r.nexthop === n.nodeIp));
    if (covering === undefined) {
      out.push({ severity: "error", code: "router-route-missing", message: `The router ${n.router.name} has no route to the pod (${ip}/32 via ${n.nodeIp ?? "its VM"}): traffic from outside the subnet cannot reach it. Is vrouter-route-controller running, or is the route limit reached?` });
    }
    const used = n.router.routes.length;
    if (used >= n.router.limit) out.push({ severity: "warning", code: "route-limit-reached", message: `The router holds ${used} of at most ${n.router.limit} routes: new pods get no route.` });
    else if (used >= 0.8 * n.router.limit) out.push({ severity: "warning", code: "route-headroom-low", message: `The router holds ${used} of at most ${n.router.limit} routes.` });
  }
  if (mode === "mix" && n.networkProjectMatches === false && n.isAdmin === false) {
    out.push({ severity: "warning", code: "policy-403-hazard", message: "The pod network belongs to another project: Neutron's default policy refuses fixed-IP changes on it (403 PolicyNotAuthorized)." });
  }
  if (mode === "mix" && n.subnet?.enableDhcp === true && n.nodeIp !== undefined && cidrContains(parseCidr(n.subnet.cidr), parseIp(n.nodeIp)) && ip < n.nodeIp) {
    out.push({ severity: "warning", code: "dhcp-hazard", message: `Neutron lists fixed IPs sorted as strings, so ${ip} comes before the VM's own ${n.nodeIp}: DHCP on subnet ${n.subnet.id} may hand the pod's address to the VM at its next renew. Use a dedicated pod subnet (ipam.neutronConf.subnets) without DHCP.` });
  }
}

export function diagnose(a: Attachment, pod: Side, host: Side, neutron: NeutronFacts | undefined): Finding[] {
  const out: Finding[] = [];
  const mode = modeOf(a);
  const ip = podIpOf(a);
  if (!pod.exists) out.push({ severity: "error", code: "pod-netns-missing", message: `The pod's network namespace ${a.netns} does not exist (the pod is gone, or its sandbox was recreated).` });
  if (ip === undefined) out.push({ severity: "error", code: "no-address", message: "The attachment's CNI result has no IPv4 address." });
  else {
    if (pod.exists && mode === "mix") mixKernel(a, pod, host, ip, out);
    if (pod.exists && mode === "eni") eniKernel(a, pod, host, ip, out);
    if (!pod.exists && mode === "mix" && !host.links.some((l) => l.name === hostVethName(a.containerId, a.ifname))) {
      out.push({ severity: "error", code: "host-veth-missing", message: "The host end of the pod's veth is gone." });
    }
    if (neutron !== undefined) neutronFindings(mode, ip, neutron, out);
  }
  if (mode === "unknown") out.push({ severity: "warning", code: "not-tcnp", message: `This attachment's chain (${a.plugins.map((p) => String(p["type"])).join(", ")}) is not a tcnp one.` });
  return out;
}
