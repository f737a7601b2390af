// The network configurations installed on the node (the agent's conf dir): the only ones the agent
// serves. A request carries a configuration as the runtime passes it to a plugin — the installed
// one, plus what the runtime adds (prevResult, runtimeConfig, args, the valid attachments of a GC);
// anything else that differs (an authUrl, a cloudsYaml, a stateDir, a password) makes it another
// configuration, which the agent refuses before it touches anything.
import * as fs from "node:fs";
import * as path from "node:path";
import { isObject, type Json } from "../cni/netconf.js";

/** Keys a runtime (or `tcnp gc`) adds to an installed configuration when it runs a plugin. */
const RUNTIME_KEYS = new Set([
  "cniVersion",
  "name",
  "prevResult",
  "runtimeConfig",
  "args",
  "cni.dev/valid-attachments",
  "cni.dev/attachments",
  "tcnpGcMinAgeSeconds",
]);

export interface InstalledPlugin {
  file: string;
  network: string;
  type: string;
  /** The plugin's entry without the runtime's keys. */
  entry: Json;
}

// JSON with its object keys in one order: two configurations compare equal whatever their layout.
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (isObject(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(",")}}`;
  return JSON.stringify(v);
}

const withoutRuntimeKeys = (c: Json): Json =>
  Object.fromEntries(Object.entries(c).filter(([k]) => !RUNTIME_KEYS.has(k)));

export class InstalledConfs {
  readonly dirs: readonly string[];
  #stamp = "";
  #plugins: InstalledPlugin[] = [];

  constructor(dirs: readonly string[]) {
    this.dirs = dirs;
  }

  // Read again when a file in the directories changed (names, sizes and times).
  #refresh(): void {
    const names = this.dirs.flatMap((d) => {
      try {
        return fs
          .readdirSync(d)
          .filter((f) => /\.(conf|conflist|json)$/.test(f))
          .sort()
          .map((f) => path.join(d, f));
      } catch {
        return [];
      }
    });
    const stats = names.map((n) => {
      try {
        const st = fs.statSync(n);
        return `${n}:${st.size}:${st.mtimeMs}`;
      } catch {
        return n;
      }
    });
    const stamp = stats.join("|");
    if (stamp === this.#stamp) return;
    this.#stamp = stamp;
    this.#plugins = [];
    for (const n of names) {
      try {
        const c = JSON.parse(fs.readFileSync(n, "utf8")) as unknown;
        if (!isObject(c) || typeof c["name"] !== "string") continue;
        const list = (Array.isArray(c["plugins"]) ? c["plugins"] : [c]).filter(isObject);
        for (const p of list)
          if (typeof p["type"] === "string")
            this.#plugins.push({
              file: n,
              network: c["name"],
              type: p["type"],
              entry: withoutRuntimeKeys(p),
            });
      } catch {
        // a configuration we cannot read is the runtime's business
      }
    }
  }

  plugins(): InstalledPlugin[] {
    this.#refresh();
    return [...this.#plugins];
  }

  /** Changes whenever the installed configurations do. */
  version(): string {
    this.#refresh();
    return this.#stamp;
  }

  /** The network configurations a tcnp-ipam serves, as a plugin sees them (the agent's pools). */
  ipamConfs(): Json[] {
    return this.plugins()
      .filter((p) => isObject(p.entry["ipam"]) && p.entry["ipam"]["type"] === "tcnp-ipam")
      .map((p) => ({ ...p.entry, name: p.network, cniVersion: "1.0.0" }));
  }

  /**
   * Whether `stdin`, sent to plugin `plugin`, is an installed configuration (the runtime's keys
   * aside): undefined when it is, else why not (naming the network, never a value).
   */
  refusal(plugin: string, stdin: string): string | undefined {
    let c: unknown;
    try {
      c = JSON.parse(stdin);
    } catch {
      return undefined; // the plugin reports a configuration it cannot decode, as always
    }
    if (!isObject(c)) return undefined;
    const network = typeof c["name"] === "string" ? c["name"] : "";
    const want = canonical(withoutRuntimeKeys(c));
    const candidates = this.plugins().filter(
      (p) =>
        p.network === network &&
        (plugin === "tcnp-ipam"
          ? isObject(p.entry["ipam"]) && p.entry["ipam"]["type"] === "tcnp-ipam"
          : p.type === plugin),
    );
    if (candidates.some((p) => canonical(p.entry) === want)) return undefined;
    return candidates.length === 0
      ? `the node agent serves only the network configurations installed in ${this.dirs.join(", ")}, and none of them is network "${network}" with plugin ${plugin}`
      : `the configuration of network "${network}" (${plugin}) differs from the one installed in ${candidates[0]!.file}: the node agent serves only installed configurations`;
  }
}
