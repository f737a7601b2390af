// The doctor's judgement: compare what the kernel and Neutron hold with what the plugins planned for
// this attachment (their recorded expectations), and say what is wrong in plain words. Pure.
import type { Snapshot } from "../kernel/snapshot.js";
import type { Netns } from "../kernel/types.js";
import { cidrContains, parseCidr, parseIp } from "../net/ip.js";
import { diffExpect, type Expectation, type Finding } from "../plugins/expect.js";
import type { Attachment } from "./locate.js";
import { pluginOf } from "./locate.js";

export type { Finding };

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

export const modeOf = (a: Attachment): Mode =>
  pluginOf(a, "veth-route") !== undefined ? "mix" : pluginOf(a, "host-device") !== undefined ? "eni" : "unknown";

export const podIpOf = (a: Attachment): string | undefined =>
  a.result.ips.find((i) => !i.address.includes(":"))?.address.split("/")[0];

function neutronFindings(mode: Mode, ip: string, n: NeutronFacts, out: Finding[]): void {
  if (n.error !== undefined) {
    out.push({
      severity: "warning",
      code: "neutron-unreachable",
      message: `Cannot ask Neutron: ${n.error}`,
      fix: "Check the credentials the network configuration names (openstackConf) and that Neutron answers from this node, then run the doctor again.",
    });
    return;
  }
  if (n.port === undefined)
    out.push({
      severity: "error",
      code: "port-missing",
      message: `No Neutron port holds the pod: ${n.portError ?? "not found"}.`,
      fix: "Recreate the pod: its ADD makes the address (and, in eni mode, the port) again",
    });
  else if (!n.port.ips.includes(ip)) {
    out.push({
      severity: "error",
      code: "address-not-on-port",
      message: `The address ${ip} is no longer on Neutron port ${n.port.id}: Neutron drops the pod's traffic (port security) and may give the address to someone else.`,
      fix: "Recreate the pod, and find what removed the address from the port (another tool, a cluster sharing the project without its own ipam.cluster)",
    });
  }
  if (mode === "mix" && n.router !== undefined) {
    const covering = n.router.routes.find(
      (r) => cidrContains(parseCidr(r.destination), parseIp(ip)) && (n.nodeIp === undefined || r.nexthop === n.nodeIp),
    );
    if (covering === undefined) {
      out.push({
        severity: "error",
        code: "router-route-missing",
        message: `The router ${n.router.name} has no route to the pod (${ip}/32 via ${n.nodeIp ?? "its VM"}): traffic from outside the subnet cannot reach it. Is vrouter-route-controller running, or is the route limit reached?`,
        fix: "Check that vrouter-route-controller runs and leads (kubectl -n tcnp-system logs deploy/vrouter-route-controller): it adds the route at its next reconcile; at the route limit, see route-limit-reached",
      });
    }
    const used = n.router.routes.length;
    if (used >= n.router.limit)
      out.push({
        severity: "warning",
        code: "route-limit-reached",
        message: `The router holds ${used} of at most ${n.router.limit} routes: new pods get no route.`,
        fix: "Raise the router's route quota (max_routes), give mix nodes per-node blocks (ipam.neutronConf.nodeBlockPrefix: one route per node), or use eni mode (README, Kubernetes: scaling)",
      });
    else if (used >= 0.8 * n.router.limit)
      out.push({
        severity: "warning",
        code: "route-headroom-low",
        message: `The router holds ${used} of at most ${n.router.limit} routes.`,
        fix: "Before it runs out: per-node blocks (ipam.neutronConf.nodeBlockPrefix) or a higher route quota (README, Kubernetes: scaling)",
      });
  }
  if (mode === "mix" && n.networkProjectMatches === false && n.isAdmin === false) {
    out.push({
      severity: "warning",
      code: "policy-403-hazard",
      message:
        "The pod network belongs to another project: Neutron's default policy refuses fixed-IP changes on it (403 PolicyNotAuthorized).",
      fix: "Use a network your project owns, or credentials with the admin role, for mix pods",
    });
  }
  if (
    mode === "mix" &&
    n.subnet?.enableDhcp === true &&
    n.nodeIp !== undefined &&
    cidrContains(parseCidr(n.subnet.cidr), parseIp(n.nodeIp)) &&
    ip < n.nodeIp
  ) {
    out.push({
      severity: "warning",
      code: "dhcp-hazard",
      message: `Neutron lists fixed IPs sorted as strings, so ${ip} comes before the VM's own ${n.nodeIp}: DHCP on subnet ${n.subnet.id} may hand the pod's address to the VM at its next renew. Use a dedicated pod subnet (ipam.neutronConf.subnets) without DHCP.`,
      fix: "Take pod addresses from a subnet without DHCP: ipam.neutronConf.subnets",
    });
  }
}

/** One plugin's record of the attachment, or why there is none. */
export interface RecordedPlugin {
  type: string;
  expect?: readonly Expectation[];
  /** Where the record was looked for. */
  file: string;
}

/**
 * The doctor's judgement of one attachment: the kernel against what each plugin's plan expects
 * (the very diff CHECK runs), then Neutron. Pure.
 */
export function diagnose(
  a: Attachment,
  recorded: readonly RecordedPlugin[],
  snapshots: ReadonlyMap<Netns, Snapshot>,
  neutron: NeutronFacts | undefined,
): Finding[] {
  const out: Finding[] = [];
  const mode = modeOf(a);
  const ip = podIpOf(a);
  if (snapshots.get(a.netns)?.exists !== true)
    out.push({
      severity: "error",
      code: "pod-netns-missing",
      message: `The pod's network namespace ${a.netns} does not exist (the pod is gone, or its sandbox was recreated).`,
      fix: "Nothing to repair for a gone pod: its DEL, the runtime's GC or tcnp gc releases what it held",
    });
  for (const r of recorded) {
    if (r.expect === undefined)
      out.push({
        severity: "warning",
        code: "record-missing",
        message: `No record of this attachment's ${r.type} in ${r.file}: its kernel state cannot be checked, and DEL falls back to names and prevResult.`,
        fix: "Recreate the pod to have its state recorded and checked (its DEL works without the record)",
      });
    else out.push(...diffExpect(r.expect, snapshots));
  }
  if (ip === undefined)
    out.push({
      severity: "error",
      code: "no-address",
      message: "The attachment's CNI result has no IPv4 address.",
      fix: "Recreate the pod; if it happens again, the plugin log (/var/log/tcnp) says why its ADD gave no address",
    });
  else if (neutron !== undefined) neutronFindings(mode, ip, neutron, out);
  if (mode === "unknown")
    out.push({
      severity: "warning",
      code: "not-tcnp",
      message: `This attachment's chain (${a.plugins.map((p) => String(p["type"])).join(", ")}) is not a tcnp one.`,
      fix: "Nothing for tcnp to repair: ask the doctor about a pod of a tcnp network",
    });
  return out;
}
