// Which part of a pod's NetworkPolicy target an attach plugin's ADD makes: veth-route (mix) the pod's
// host veth, host-device (eni) the pod's namespace where its NIC now is, veth-host (eni, chained) the
// veth by which the pod reaches its node and Services.
import { hostVethName } from "../net/names.js";
import type { PolicyTarget } from "./policy-node.js";

export interface PolicyHooks {
  attach(t: PolicyTarget): Promise<void>;
  /** The addresses the ADD gave the pod: other pods' rules name them. */
  addresses(containerId: string, ips: readonly string[]): void;
  detach(containerId: string): Promise<void>;
}

/** A container ID as runtimes make them (it names a file here). */
export const isContainerId = (id: string): boolean => /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id);

function cniArgs(s: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of (s ?? "").split(";")) {
    const i = kv.indexOf("=");
    if (i > 0) m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}

function resultIps(stdout: string): string[] {
  try {
    const r = JSON.parse(stdout) as { ips?: Array<{ address?: string }> };
    return (r.ips ?? []).flatMap((i) => (typeof i.address === "string" ? [i.address.split("/")[0] ?? ""] : []));
  } catch {
    return [];
  }
}

/**
 * The part of a pod's target this plugin's ADD makes; undefined: none (or not a Kubernetes pod).
 * Throws when the names it would use are no container ID or Kubernetes name.
 */
export function policyPart(
  plugin: string,
  env: Readonly<Record<string, string | undefined>>,
  stdin: string,
  stdout: string,
): PolicyTarget | undefined {
  const args = cniArgs(env["CNI_ARGS"]);
  const namespace = args.get("K8S_POD_NAMESPACE");
  const name = args.get("K8S_POD_NAME");
  const containerId = env["CNI_CONTAINERID"] ?? "";
  const ifname = env["CNI_IFNAME"] ?? "eth0";
  if (namespace === undefined || name === undefined || containerId === "") return undefined;
  // They name a file and an API path: nothing but what Kubernetes and the runtimes allow.
  if (!isContainerId(containerId))
    throw new Error(`CNI_CONTAINERID "${containerId.slice(0, 80)}" is not a container ID`);
  for (const [k, v] of [
    ["K8S_POD_NAMESPACE", namespace],
    ["K8S_POD_NAME", name],
  ] as const)
    if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(v))
      throw new Error(`${k} "${v.slice(0, 80)}" is not a Kubernetes name`);
  const base = { containerId, namespace, name };
  switch (plugin) {
    case "veth-route":
      return { ...base, ips: resultIps(stdout), hostVeth: hostVethName(containerId, ifname) };
    case "host-device":
      return { ...base, ips: resultIps(stdout), podNetns: env["CNI_NETNS"] ?? "" };
    case "veth-host": {
      let podVeth = "veth0";
      try {
        const c = (JSON.parse(stdin) as { containerInterface?: unknown }).containerInterface;
        if (typeof c === "string" && c !== "") podVeth = c;
      } catch {
        // the plugin parsed it already; the default stands
      }
      return { ...base, ips: resultIps(stdout), hostVeth: hostVethName(containerId, podVeth), podVeth };
    }
    default:
      return undefined;
  }
}
