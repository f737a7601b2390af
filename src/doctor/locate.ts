// Find a pod's CNI attachment the way the runtime recorded it: libcni's result cache
// (<cacheDir>/results/<network>-<container>-<ifname>) holds the configuration, the netns, the
// Kubernetes args and the final ADD result.
import * as fs from "node:fs";
import * as path from "node:path";
import { isObject, type Json } from "../cni/netconf.js";
import { parseResult, type CniResult } from "../cni/result.js";

export interface Attachment {
  containerId: string;
  ifname: string;
  network: string;
  netns: string;
  podNamespace?: string;
  podName?: string;
  /** The plugin configurations in chain order (a single .conf is a chain of one). */
  plugins: Json[];
  cniVersion: string;
  result: CniResult;
  cacheFile: string;
}

export type Selector = { netns: string } | { container: string } | { pod: string };

function fromCache(file: string): Attachment | undefined {
  try {
    const c = JSON.parse(fs.readFileSync(file, "utf8")) as Json;
    const conf = JSON.parse(Buffer.from(String(c["config"]), "base64").toString("utf8")) as Json;
    const args = new Map(
      (Array.isArray(c["cniArgs"]) ? (c["cniArgs"] as Array<[string, string]>) : []).map(([k, v]) => [k, v]),
    );
    const plugins = Array.isArray(conf["plugins"]) ? (conf["plugins"] as Json[]) : [conf];
    const result = parseResult(c["result"]);
    // Older libcni (Debian's 1.1.2) does not cache the netns; the result's sandbox names it.
    const netns =
      typeof c["netns"] === "string" && c["netns"] !== ""
        ? c["netns"]
        : (result.interfaces.find((i) => i.sandbox !== undefined)?.sandbox ?? "");
    const a: Attachment = {
      containerId: String(c["containerId"]),
      ifname: String(c["ifName"]),
      network: String(c["networkName"]),
      netns,
      plugins,
      cniVersion: String(conf["cniVersion"] ?? ""),
      result,
      cacheFile: file,
    };
    const ns = args.get("K8S_POD_NAMESPACE");
    const name = args.get("K8S_POD_NAME");
    if (ns !== undefined) a.podNamespace = ns;
    if (name !== undefined) a.podName = name;
    return a;
  } catch {
    return undefined;
  }
}

export function locate(cacheDir: string, sel: Selector): Attachment | undefined {
  const dir = path.join(cacheDir, "results");
  let files: string[];
  try {
    files = fs.readdirSync(dir).map((f) => path.join(dir, f));
  } catch {
    return undefined;
  }
  for (const f of files) {
    const a = fromCache(f);
    if (a === undefined) continue;
    if ("netns" in sel && a.netns === sel.netns) return a;
    if ("container" in sel && a.containerId === sel.container) return a;
    if ("pod" in sel && `${a.podNamespace}/${a.podName}` === sel.pod) return a;
  }
  return undefined;
}

export const pluginOf = (a: Attachment, type: string): Json | undefined => a.plugins.find((p) => p["type"] === type);
export const ipamOf = (a: Attachment): Json | undefined =>
  a.plugins.map((p) => p["ipam"]).find((i): i is Json => isObject(i));
