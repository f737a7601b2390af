// CNI_* environment → typed command arguments. Which variables each verb needs follows the Go skel's
// table (research/cni-anchors.md §3.2); messages name the missing or malformed variable.
import { CniError, CniCode, invalidEnv } from "./errors.js";
import type { Verb } from "./version.js";

export interface CmdArgs {
  command: Verb;
  containerId: string;
  /** Path of the pod's network namespace; "" when the runtime sent none (allowed on DEL). */
  netns: string;
  ifname: string;
  /** CNI_ARGS as key/value pairs, in the order given. */
  args: ReadonlyMap<string, string>;
  path: readonly string[];
}

export type Env = Readonly<Record<string, string | undefined>>;

const VERBS: readonly Verb[] = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"];
const NEEDS: Record<Verb, { id: boolean; netns: boolean; ifname: boolean; path: boolean }> = {
  ADD: { id: true, netns: true, ifname: true, path: true },
  CHECK: { id: true, netns: true, ifname: true, path: true },
  DEL: { id: true, netns: false, ifname: true, path: true },
  GC: { id: false, netns: false, ifname: false, path: true },
  STATUS: { id: false, netns: false, ifname: false, path: true },
  VERSION: { id: false, netns: false, ifname: false, path: false },
};

/** Runtimes use 64 hex characters; 200 leaves room for the interface name and suffixes in file names. */
export const MAX_CONTAINER_ID = 200;
const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Parse "K=V;K2=V2" leniently: empty segments are skipped, a segment without "=" is an error. */
export function parseCniArgs(raw: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === undefined || raw.trim() === "") return out;
  for (const seg of raw.split(";")) {
    if (seg.trim() === "") continue;
    const eq = seg.indexOf("=");
    if (eq <= 0) throw invalidEnv(`CNI_ARGS: invalid segment "${seg}" (expected KEY=VALUE)`);
    out.set(seg.slice(0, eq).trim(), seg.slice(eq + 1).trim());
  }
  return out;
}

/** Interface names the kernel accepts: 1–15 bytes, no "/", ":" or whitespace, not "." or "..". */
export function validateIfname(name: string): string | undefined {
  if (name.length === 0) return "is empty";
  if (Buffer.byteLength(name) > 15) return `"${name}" is longer than 15 bytes`;
  if (name === "." || name === "..") return `"${name}" is not a valid name`;
  if (/[/:\s]/.test(name)) return `"${name}" contains "/", ":" or whitespace`;
  return undefined;
}

export function parseCommand(env: Env): Verb {
  const cmd = env["CNI_COMMAND"];
  if (cmd === undefined || cmd === "") throw invalidEnv("required env variables [CNI_COMMAND] missing");
  if (!(VERBS as readonly string[]).includes(cmd)) {
    throw new CniError(CniCode.InvalidEnv, `unknown CNI_COMMAND: ${cmd}`);
  }
  return cmd as Verb;
}

export function parseCmdArgs(env: Env): CmdArgs {
  const command = parseCommand(env);
  const need = NEEDS[command];
  const missing: string[] = [];
  const get = (k: string, required: boolean): string => {
    const v = env[k] ?? "";
    if (required && v === "") missing.push(k);
    return v;
  };
  const containerId = get("CNI_CONTAINERID", need.id);
  const netns = get("CNI_NETNS", need.netns);
  const ifname = get("CNI_IFNAME", need.ifname);
  const path = get("CNI_PATH", need.path);
  if (missing.length > 0) throw invalidEnv(`required env variables [${missing.join(",")}] missing`);
  // Records are files named by the ID: keep every name within the 255 bytes a file name may have.
  if (need.id && containerId.length > MAX_CONTAINER_ID) {
    throw invalidEnv(
      `CNI_CONTAINERID is ${containerId.length} characters long; at most ${MAX_CONTAINER_ID} are accepted`,
    );
  }
  if (need.id && !CONTAINER_ID_RE.test(containerId)) {
    throw invalidEnv(
      `CNI_CONTAINERID "${containerId}" is invalid: must start with an alphanumeric character, then [A-Za-z0-9_.-]`,
    );
  }
  if (need.ifname) {
    const bad = validateIfname(ifname);
    if (bad !== undefined) throw invalidEnv(`CNI_IFNAME ${bad}`);
  }
  if (netns !== "" && !netns.startsWith("/")) throw invalidEnv(`CNI_NETNS "${netns}" must be an absolute path`);
  return {
    command,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env["CNI_ARGS"]),
    path: path === "" ? [] : path.split(":").filter((p) => p !== ""),
  };
}

/** The Kubernetes pod identity from CNI_ARGS (any order, any extra keys). */
export function podRef(args: ReadonlyMap<string, string>): { namespace?: string; name?: string; uid?: string } {
  const out: { namespace?: string; name?: string; uid?: string } = {};
  const ns = args.get("K8S_POD_NAMESPACE");
  const name = args.get("K8S_POD_NAME");
  const uid = args.get("K8S_POD_UID");
  if (ns !== undefined && ns !== "") out.namespace = ns;
  if (name !== undefined && name !== "") out.name = name;
  if (uid !== undefined && uid !== "") out.uid = uid;
  return out;
}
