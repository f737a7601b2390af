// The parts of a network configuration every plugin shares: version, name, type, prevResult,
// runtimeConfig (with containerd's capitalised keys normalised) and the GC attachment list.
import { decodeFailure, incompatibleVersion, invalidConfig } from "./errors.js";
import { parseResult, type CniResult } from "./result.js";
import {
  compareVersions,
  isSupportedVersion,
  MIN_VERSION_FOR,
  SUPPORTED_VERSIONS,
  type CniVersion,
  type Verb,
} from "./version.js";

export type Json = Record<string, unknown>;
export const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  prevResult?: CniResult;
  runtimeConfig: Json;
  /** `cni.dev/valid-attachments` (or the older `cni.dev/attachments`) on GC. */
  validAttachments?: Attachment[];
  /** The whole decoded object, for plugin-specific parsing and for delegation. */
  raw: Json;
}

export function decodeJson(stdin: string, what = "network configuration"): unknown {
  try {
    return JSON.parse(stdin);
  } catch (e) {
    // Node's message quotes the text around the fault, which may be a password: say where, not what.
    const at = /position (\d+)/.exec((e as Error).message);
    const where =
      at === null
        ? ""
        : (() => {
            const before = stdin.slice(0, Number(at[1]));
            const line = before.split("\n").length;
            return ` at line ${line}, column ${before.length - before.lastIndexOf("\n")}`;
          })();
    throw decodeFailure(`Cannot decode ${what}: not valid JSON${where} (${stdin.length} bytes)`);
  }
}

// containerd's go-cni sends `{"HostPort":…,"ContainerPort":…}`; libcni sends camelCase. Go decodes
// both case-insensitively, so lower the first letter of capability-arg keys (research/toolchain.md §4.4).
function normaliseKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normaliseKeys);
  if (!isObject(v)) return v;
  const out: Json = {};
  for (const [k, val] of Object.entries(v)) {
    const key = /^[A-Z][a-z]/.test(k) ? k[0]!.toLowerCase() + k.slice(1) : k === "HostIP" ? "hostIP" : k;
    out[key] = normaliseKeys(val);
  }
  return out;
}

function parseAttachments(raw: Json): Attachment[] | undefined {
  const v = raw["cni.dev/valid-attachments"] ?? raw["cni.dev/attachments"];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalidConfig(`"cni.dev/valid-attachments" must be a list`);
  return v.map((a, i) => {
    if (!isObject(a) || typeof a["containerID"] !== "string" || typeof a["ifname"] !== "string") {
      throw invalidConfig(`"cni.dev/valid-attachments"[${i}] must have string containerID and ifname`);
    }
    return { containerID: a["containerID"], ifname: a["ifname"] };
  });
}

/**
 * The key `tcnp gc` adds to the configuration it hands each plugin's GC: attachments younger than
 * this many seconds are kept (a runtime's own GC sends none: 0).
 */
export const GC_MIN_AGE_KEY = "tcnpGcMinAgeSeconds";

/** The GC grace period a configuration asks for, in ms (0 when absent or not a number ≥ 0). */
export function gcMinAgeMs(conf: Pick<NetConf, "raw">): number {
  const v = conf.raw[GC_MIN_AGE_KEY];
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v * 1000 : 0;
}

/** Decode and validate stdin for `verb`. Version errors are code 1, shape errors 6/7. */
export function parseNetConf(stdin: string, verb: Verb): NetConf {
  const raw = decodeJson(stdin);
  if (!isObject(raw)) throw decodeFailure("Cannot decode network configuration: not a JSON object");
  const version = raw["cniVersion"];
  if (version === undefined || version === "") {
    throw incompatibleVersion(`config is "0.1.0" (no cniVersion), plugin supports [${SUPPORTED_VERSIONS.join(" ")}]`);
  }
  if (typeof version !== "string") throw invalidConfig(`"cniVersion" must be a string`);
  if (!isSupportedVersion(version)) {
    throw incompatibleVersion(`config is "${version}", plugin supports [${SUPPORTED_VERSIONS.join(" ")}]`);
  }
  if (compareVersions(version, MIN_VERSION_FOR[verb]) < 0) {
    throw incompatibleVersion(`config version "${version}" does not allow ${verb}`);
  }
  const name = raw["name"];
  if (typeof name !== "string" || name === "") throw invalidConfig(`missing network name ("name")`);
  const type = raw["type"];
  if (type !== undefined && typeof type !== "string") throw invalidConfig(`"type" must be a string`);
  const rc = raw["runtimeConfig"];
  if (rc !== undefined && rc !== null && !isObject(rc)) throw invalidConfig(`"runtimeConfig" must be an object`);
  const conf: NetConf = {
    cniVersion: version,
    name,
    type: typeof type === "string" ? type : "",
    runtimeConfig: isObject(rc) ? (normaliseKeys(rc) as Json) : {},
    raw,
  };
  const prev = raw["prevResult"];
  if (prev !== undefined && prev !== null) {
    try {
      conf.prevResult = parseResult(prev);
    } catch (e) {
      // DEL is best effort: it releases from its own records even when prevResult is unreadable.
      if (verb !== "DEL") throw e;
    }
  }
  const att = parseAttachments(raw);
  if (att !== undefined) conf.validAttachments = att;
  return conf;
}
