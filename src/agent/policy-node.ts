// NetworkPolicy on the node without the API server: a pod's nft scripts for given rules, and what a
// plugin process does when no agent answers on a node that enforces policy. Nothing here loads a
// Kubernetes client: the plugin path imports it.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { NftRunner } from "../kernel/nft.js";
import { HOST } from "../kernel/types.js";
import type { PodPolicy } from "../policy/compute.js";
import { chainRules, hostBase, hostPodRemoval, hostPodScript, podNetnsScript, type SetNamer } from "../policy/nft.js";
import { writeFileAtomic } from "../state/files.js";

/** A pod attached on this node, as the policy engine enforces it. */
export interface PolicyTarget {
  containerId: string;
  namespace: string;
  name: string;
  ips: string[];
  /** The pod's veth on the node: mix, both directions; eni, what the pod sends by its veth (Services). */
  hostVeth?: string;
  /** eni: the pod's network namespace (its table lives there) and the name of its veth to the node. */
  podNetns?: string;
  podVeth?: string;
}

/** Isolated both ways (only the node reaches it): a pod whose labels are not known. */
export const DENY_ALL: PodPolicy = {
  ingress: { policies: ["(unknown: the agent cannot learn this pod's labels yet)"], clauses: [] },
  egress: { policies: ["(unknown: the agent cannot learn this pod's labels yet)"], clauses: [] },
};

/** The file that says this node enforces NetworkPolicy (the agent writes it at start). */
export const ENFORCING = "enforcing";

/** A pod's rules as nft scripts, each with the namespace it runs in. */
export function podScripts(
  t: PolicyTarget,
  p: PodPolicy,
  nodeAddresses: readonly string[],
  cluster: {
    /** eni: remote servers' ingress for what this pod sends them by its veth (src/policy/nft.ts). */
    svc?: string[];
    /** The cluster's node addresses. */
    nodes?: readonly string[];
    /** Shared sets for the peers of the node's chains (src/policy/sets.ts); none: inline. */
    named?: SetNamer;
  } = {},
): Array<{ netns: string; script: string }> {
  const onNode = (dir: "ingress" | "egress"): string[] => chainRules(p[dir], dir, cluster.named);
  if (t.podNetns !== undefined) {
    // The pod's own table has no shared sets: its peers inline.
    const ingress = chainRules(p.ingress, "ingress");
    const egress = chainRules(p.egress, "egress");
    const nodeVeth = t.podVeth === undefined ? {} : { nodeVeth: t.podVeth };
    const nodes = cluster.nodes === undefined ? {} : { nodes: cluster.nodes };
    const out = [
      { netns: t.podNetns, script: podNetnsScript({ ingress, egress, nodeAddresses, ...nodeVeth, ...nodes }) },
    ];
    if (t.hostVeth !== undefined)
      out.push({
        netns: HOST,
        script: hostPodScript(t.hostVeth, {
          egress: onNode("egress"),
          ...(cluster.svc === undefined ? {} : { svc: cluster.svc }),
        }),
      });
    return out;
  }
  if (t.hostVeth === undefined) return [];
  return [{ netns: HOST, script: hostPodScript(t.hostVeth, { ingress: onNode("ingress"), egress: onNode("egress") }) }];
}

/** The node's own addresses (the agent runs in the node's namespace): they always reach eni pods. */
export function localAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((a): a is os.NetworkInterfaceInfo => a !== undefined && !a.internal && !a.address.startsWith("fe80"))
    .map((a) => a.address);
}

const recordOf = (dir: string, containerId: string): string => path.join(dir, `${containerId}.json`);

function readRecord(dir: string, containerId: string): PolicyTarget | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordOf(dir, containerId), "utf8")) as PolicyTarget;
  } catch {
    return undefined;
  }
}

/**
 * Without an agent (restarting, upgrading), a plugin process serving a pod on a node that enforces
 * NetworkPolicy cannot learn the pod's labels: it records the pod for the agent and isolates it
 * (only its node reaches it) before the interface exists; the agent, once back, applies its real
 * rules from the record. Nothing when the node does not enforce policy.
 */
export async function isolateWithoutAgent(
  part: PolicyTarget,
  o: { dir: string; nft: NftRunner; nodeAddresses?: () => string[] },
): Promise<boolean> {
  if (!fs.existsSync(path.join(o.dir, ENFORCING))) return false;
  const before = readRecord(o.dir, part.containerId);
  const t: PolicyTarget = { ...before, ...part, ips: part.ips.length > 0 ? part.ips : (before?.ips ?? []) };
  writeFileAtomic(recordOf(o.dir, t.containerId), JSON.stringify(t), { durable: false });
  for (const s of podScripts(t, DENY_ALL, (o.nodeAddresses ?? localAddresses)()))
    await o.nft(s.netns === HOST ? hostBase() + s.script : s.script, s.netns);
  return true;
}

/** After the plugin process's own ADD: the pod's addresses, in its record (for the agent). */
export function addressesWithoutAgent(containerId: string, ips: readonly string[], dir: string): void {
  const t = readRecord(dir, containerId);
  if (t !== undefined && ips.length > 0)
    writeFileAtomic(recordOf(dir, containerId), JSON.stringify({ ...t, ips }), { durable: false });
}

/** A plugin process's DEL: the pod's chains on the node and its record go. */
export async function forgetWithoutAgent(containerId: string, o: { dir: string; nft: NftRunner }): Promise<void> {
  const t = readRecord(o.dir, containerId);
  if (t === undefined) return;
  if (t.hostVeth !== undefined) await o.nft(hostPodRemoval(t.hostVeth), HOST);
  fs.rmSync(recordOf(o.dir, containerId), { force: true });
}
