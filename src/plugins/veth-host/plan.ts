// veth-host's kernel work as values (terway's model, research/cni-anchors.md §6 "B"): the pod keeps
// its default route on its Neutron NIC; a veth carries only host and Service traffic. Both ends get
// permanent neighbours (unnumbered veths must not depend on arp_ignore). Service replies come back
// through the host because the host masquerades pod traffic it forwards out of hostInterface.
// Policy routing appears only inside the pod, for one flow: replies to connections that came in
// through veth0 (NodePort to a local pod without SNAT) leave through veth0 again.
import type { CniResult } from "../../cni/result.js";
import type { Step, Teardown } from "../../kernel/plan.js";
import { HOST, type IptablesRuleSet, type Netns } from "../../kernel/types.js";
import type { AttachmentPlan } from "../attachment.js";
import type { Expectation } from "../expect.js";

export const REPLY_MARK = 0x1000;
export const REPLY_TABLE = 1000;
export const REPLY_RULE_PRIORITY = 1000;

export interface VethHostInput {
  hostVeth: string;
  hostMac: string;
  podNetns: Netns;
  podVeth: string;
  podVethMac: string;
  podIp: string;
  hostIp: string;
  hostInterface: string;
  serviceCidr?: string;
  mtu: number;
  ipMasq: boolean;
  chain: string;
  comment: string;
}

/** The host's masquerade of pod traffic it forwards out of hostInterface (Service replies). */
export function masqueradeSet(
  i: Pick<VethHostInput, "podIp" | "hostInterface" | "chain" | "comment">,
): IptablesRuleSet {
  return {
    chains: [{ table: "nat", name: i.chain, rules: [`-m comment --comment "${i.comment}" -j MASQUERADE`] }],
    jumps: [
      {
        table: "nat",
        chain: "POSTROUTING",
        rule: `-s ${i.podIp}/32 -o ${i.hostInterface} -m comment --comment "${i.comment}" -j ${i.chain}`,
      },
    ],
  };
}

/** In the pod: mark connections that arrive on veth0, and mark their replies so they route back. */
export function podReplySet(podVeth: string): IptablesRuleSet {
  const mark = `0x${REPLY_MARK.toString(16)}/0x${REPLY_MARK.toString(16)}`;
  return {
    chains: [
      { table: "mangle", name: "TCNP-VETH-IN", rules: [`-i ${podVeth} -j CONNMARK --set-xmark ${mark}`] },
      { table: "mangle", name: "TCNP-VETH-OUT", rules: [`-m connmark --mark ${mark} -j MARK --set-xmark ${mark}`] },
    ],
    jumps: [
      { table: "mangle", chain: "PREROUTING", rule: "-j TCNP-VETH-IN" },
      { table: "mangle", chain: "OUTPUT", rule: "-j TCNP-VETH-OUT" },
    ],
  };
}

export function planVethHostAdd(i: VethHostInput): Step[] {
  const p = i.podNetns;
  const steps: Step[] = [
    { op: "writeSysctl", ns: HOST, key: "net.ipv4.ip_forward", value: "1", keep: true },
    {
      op: "createVeth",
      ns: HOST,
      spec: {
        name: i.hostVeth,
        mac: i.hostMac,
        mtu: i.mtu,
        peer: { name: i.podVeth, netns: p, mac: i.podVethMac, mtu: i.mtu },
      },
    },
    { op: "setLink", ns: HOST, name: i.hostVeth, change: { up: true } },
    { op: "addRoute", ns: HOST, route: { dst: `${i.podIp}/32`, dev: i.hostVeth, scope: "link" } },
    { op: "setNeighbour", ns: HOST, neigh: { dev: i.hostVeth, ip: i.podIp, mac: i.podVethMac, permanent: true } },
    { op: "setLink", ns: p, name: i.podVeth, change: { up: true } },
    // A NodePort client's address is routed via eth0 yet arrives on veth0, and veth0 has no address
    // of its own: the kernel's reverse-path filter drops that in both strict and loose mode (it
    // rejects any interface without addresses), so it is off on veth0 — and in "all", which is the
    // floor for every interface (each other interface keeps its own setting).
    { op: "writeSysctl", ns: p, key: `net/ipv4/conf/${i.podVeth}/rp_filter`, value: "0" },
    { op: "writeSysctl", ns: p, key: "net/ipv4/conf/all/rp_filter", value: "0" },
    { op: "addRoute", ns: p, route: { dst: `${i.hostIp}/32`, dev: i.podVeth, scope: "link", src: i.podIp } },
    { op: "setNeighbour", ns: p, neigh: { dev: i.podVeth, ip: i.hostIp, mac: i.hostMac, permanent: true } },
  ];
  if (i.serviceCidr !== undefined)
    steps.push({ op: "addRoute", ns: p, route: { dst: i.serviceCidr, gw: i.hostIp, dev: i.podVeth, src: i.podIp } });
  steps.push(
    {
      op: "addRoute",
      ns: p,
      route: { dst: "0.0.0.0/0", gw: i.hostIp, dev: i.podVeth, table: REPLY_TABLE, onlink: true },
    },
    {
      op: "addRule",
      ns: p,
      rule: { priority: REPLY_RULE_PRIORITY, table: REPLY_TABLE, fwmark: REPLY_MARK, fwmask: REPLY_MARK },
    },
    { op: "applyIptables", ns: p, set: podReplySet(i.podVeth) },
  );
  if (i.ipMasq) steps.push({ op: "applyIptables", ns: HOST, set: masqueradeSet(i) });
  return steps;
}

/**
 * DEL: the masquerade chain (found by name, any jump into it), the veth (its pod end and the reply
 * table's route go with it), and — while the pod's namespace lives — the reply rule and marks in it:
 * a runtime may ADD into the same namespace again, where a rule left behind would refuse the new
 * one (EEXIST).
 */
export function planVethHostDel(i: {
  hostVeth: string;
  chain: string;
  podNetns?: Netns;
  podVeth?: string;
}): Teardown[] {
  const out: Teardown[] = [
    { op: "deleteIptables", ns: HOST, set: { chains: [{ table: "nat", name: i.chain, rules: [] }], jumps: [] } },
    { op: "deleteLink", ns: HOST, name: i.hostVeth },
  ];
  if (i.podNetns !== undefined && i.podNetns !== "" && i.podVeth !== undefined)
    out.push(
      {
        op: "deleteRule",
        ns: i.podNetns,
        rule: { priority: REPLY_RULE_PRIORITY, table: REPLY_TABLE, fwmark: REPLY_MARK, fwmask: REPLY_MARK },
      },
      { op: "deleteIptables", ns: i.podNetns, set: podReplySet(i.podVeth) },
    );
  return out;
}

function expectations(i: VethHostInput): Expectation[] {
  const p = i.podNetns;
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
      why: `the pod cannot reach its VM or Services through ${i.podVeth}.`,
    },
    {
      fact: { kind: "route", ns: HOST, route: { dst: `${i.podIp}/32`, dev: i.hostVeth } },
      code: "host-route",
      severity: "error",
      why: "the VM and Service replies cannot reach the pod.",
    },
    {
      fact: {
        kind: "neighbour",
        ns: HOST,
        neigh: { dev: i.hostVeth, ip: i.podIp, mac: i.podVethMac, permanent: true },
      },
      code: "host-neighbour",
      severity: "warning",
      why: "the VM depends on ARP to reach the pod's unnumbered veth.",
    },
    {
      fact: { kind: "link", ns: p, name: i.podVeth, up: true, mac: i.podVethMac },
      code: "pod-veth",
      severity: "error",
      why: "the pod cannot reach its VM or Services.",
    },
    {
      fact: { kind: "sysctl", ns: p, key: `net/ipv4/conf/${i.podVeth}/rp_filter`, value: "0" },
      code: "pod-rp-filter",
      severity: "warning",
      why: "the pod drops NodePort traffic that arrives on its veth (reverse-path filter).",
    },
    {
      fact: { kind: "sysctl", ns: p, key: "net/ipv4/conf/all/rp_filter", value: "0" },
      code: "pod-rp-filter-all",
      severity: "warning",
      why: "the pod drops NodePort traffic that arrives on its veth (reverse-path filter).",
    },
    {
      fact: { kind: "route", ns: p, route: { dst: `${i.hostIp}/32`, dev: i.podVeth, scope: "link" } },
      code: "pod-host-route",
      severity: "error",
      why: `the pod cannot reach its VM (${i.hostIp}).`,
    },
    {
      fact: { kind: "neighbour", ns: p, neigh: { dev: i.podVeth, ip: i.hostIp, mac: i.hostMac, permanent: true } },
      code: "pod-host-neighbour",
      severity: "warning",
      why: "the pod depends on ARP to reach its VM (which arp_ignore on the host can break).",
    },
  ];
  if (i.serviceCidr !== undefined) {
    out.push({
      fact: { kind: "route", ns: p, route: { dst: i.serviceCidr, gw: i.hostIp, dev: i.podVeth } },
      code: "service-route",
      severity: "error",
      why: `the pod's Service traffic (${i.serviceCidr}) does not go through its VM.`,
    });
  }
  out.push(
    {
      fact: { kind: "route", ns: p, route: { dst: "0.0.0.0/0", gw: i.hostIp, dev: i.podVeth, table: REPLY_TABLE } },
      code: "reply-table",
      severity: "warning",
      why: "NodePort traffic to the pod without SNAT gets no answer.",
    },
    {
      fact: { kind: "rule", ns: p, rule: { priority: REPLY_RULE_PRIORITY, table: REPLY_TABLE, fwmark: REPLY_MARK } },
      code: "reply-rule",
      severity: "warning",
      why: "NodePort replies do not use the reply table.",
    },
    {
      fact: { kind: "iptables", ns: p, set: podReplySet(i.podVeth) },
      code: "reply-marks",
      severity: "warning",
      why: "NodePort connections are not marked for their replies.",
    },
  );
  if (i.ipMasq) {
    out.push({
      fact: { kind: "iptables", ns: HOST, set: masqueradeSet(i) },
      code: "masquerade",
      severity: "error",
      why: "the VM does not masquerade the pod's forwarded traffic: Service replies will not come back through the VM.",
    });
  }
  return out;
}

export function planVethHost(i: VethHostInput, prev: CniResult): AttachmentPlan {
  return {
    steps: planVethHostAdd(i),
    teardown: planVethHostDel(i),
    expect: expectations(i),
    result: {
      ...prev,
      interfaces: [
        ...prev.interfaces,
        { name: i.hostVeth, mac: i.hostMac },
        { name: i.podVeth, mac: i.podVethMac, sandbox: i.podNetns },
      ],
    },
  };
}
