// Which part of a pod's NetworkPolicy target an attach plugin's ADD makes: veth-route (mix) the pod's
// host veth, host-device (eni) the pod's namespace where its NIC now is, veth-host (eni, chained) the
// veth by which the pod reaches its node and Services.
import { hostVethName } from "../net/names.js";
import type { PolicyTarget } from "./policy.js";

export interface PolicyHooks {
  attach(t: PolicyTarget): Promise<void>;
  /** The addresses the ADD gave the pod: other pods' rules name them. */
  addresses(containerId: string, ips: readonly string[]): void;
  detach(containerId: string): Promise<void>;
}

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

/** The part of a pod's target this plugin's successful ADD made; undefined: none (or not a Kubernetes pod). */
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
