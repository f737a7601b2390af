// The names the one executable answers to (a CNI plugin's binary name is its `type`).
import * as path from "node:path";

/** The tcnp plugins that keep attachment records (tcnp-ipam keeps allocations instead). */
export const ATTACHMENT_PLUGINS: ReadonlySet<string> = new Set(["veth-route", "host-device", "veth-host"]);
export const CNI_PLUGIN_NAMES = ["tcnp-ipam", "host-device", "veth-host", "veth-route"] as const;
export type CniPluginName = (typeof CNI_PLUGIN_NAMES)[number];
export const PROGRAM_NAMES = [...CNI_PLUGIN_NAMES, "vrouter-route-controller", "tcnp"] as const;
export type ProgramName = (typeof PROGRAM_NAMES)[number];

export const isCniPlugin = (n: string): n is CniPluginName => (CNI_PLUGIN_NAMES as readonly string[]).includes(n);
const isProgram = (n: string): n is ProgramName => (PROGRAM_NAMES as readonly string[]).includes(n);

/**
 * Which program to be: the name we were executed under (a link in the CNI bin dir), else the
 * script's name when run as `node tcnp.cjs`, else the admin CLI.
 */
export function invokedAs(argv0: string, argv: readonly string[]): ProgramName {
  for (const cand of [argv0, argv[1] ?? ""]) {
    const base = path.basename(cand).replace(/\.(c?js|mjs)$/, "");
    if (isProgram(base)) return base;
  }
  return "tcnp";
}
