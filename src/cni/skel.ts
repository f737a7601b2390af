// The CNI dispatcher: env + stdin in, stdout text + exit code out. No process globals: the entry point
// passes them in and prints what comes back, so tests drive every verb with plain values.
import { parseCmdArgs, parseCommand, type CmdArgs, type Env } from "./env.js";
import { type CniError, toCniError } from "./errors.js";
import { decodeJson, isObject, parseNetConf, type NetConf } from "./netconf.js";
import { formatResult, type CniResult } from "./result.js";
import { CURRENT_VERSION, isSupportedVersion, SUPPORTED_VERSIONS } from "./version.js";

export interface PluginContext {
  args: CmdArgs;
  conf: NetConf;
}

/** A plugin's verbs. ADD returns the result in the internal model; skel prints it in the config's version. */
export interface CniPlugin {
  add(ctx: PluginContext): Promise<CniResult>;
  del(ctx: PluginContext): Promise<void>;
  check(ctx: PluginContext): Promise<void>;
  gc?(ctx: PluginContext): Promise<void>;
  status?(ctx: PluginContext): Promise<void>;
}

export interface CniIo {
  env: Env;
  stdin: string;
}

export interface CniOutcome {
  exitCode: number;
  stdout: string;
  /** Diagnostic text for stderr (never the result, never a secret). */
  stderr: string;
  /** The error, when the command failed: for logging by the caller. */
  error?: CniError;
}

function versionReply(stdin: string): string {
  let version: string = CURRENT_VERSION;
  try {
    const raw = stdin.trim() === "" ? undefined : decodeJson(stdin);
    if (isObject(raw) && typeof raw["cniVersion"] === "string" && isSupportedVersion(raw["cniVersion"])) {
      version = raw["cniVersion"];
    }
  } catch {
    // VERSION ignores malformed stdin, as the Go skel does.
  }
  return JSON.stringify({ cniVersion: version, supportedVersions: [...SUPPORTED_VERSIONS] });
}

function confVersionOf(stdin: string): string | undefined {
  try {
    const raw = JSON.parse(stdin) as unknown;
    if (isObject(raw) && typeof raw["cniVersion"] === "string" && isSupportedVersion(raw["cniVersion"])) {
      return raw["cniVersion"];
    }
  } catch {
    // unparseable stdin: the error reply then carries no cniVersion
  }
  return undefined;
}

export interface RunOptions {
  /** The text a bare invocation prints. */
  about?: string;
  /** Maps what a plugin throws to a CNI error (the edge's mapping of adapter errors). */
  toCniError?: (e: unknown) => CniError;
}

/** Run one CNI invocation of `plugin`. Never throws. */
export async function runCni(plugin: CniPlugin, io: CniIo, opts: RunOptions = {}): Promise<CniOutcome> {
  const about = opts.about ?? "tcnp";
  const mapError = opts.toCniError ?? toCniError;
  try {
    if ((io.env["CNI_COMMAND"] ?? "") === "") {
      return {
        exitCode: 0,
        stdout: "",
        stderr: `${about}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}\n`,
      };
    }
    const verb = parseCommand(io.env);
    if (verb === "VERSION") return { exitCode: 0, stdout: versionReply(io.stdin), stderr: "" };
    const args = parseCmdArgs(io.env);
    const conf = parseNetConf(io.stdin, verb);
    const ctx: PluginContext = { args, conf };
    switch (verb) {
      case "ADD": {
        const result = await plugin.add(ctx);
        return { exitCode: 0, stdout: JSON.stringify(formatResult(result, conf.cniVersion)), stderr: "" };
      }
      case "DEL":
        await plugin.del(ctx);
        break;
      case "CHECK":
        await plugin.check(ctx);
        break;
      case "GC":
        if (plugin.gc !== undefined) await plugin.gc(ctx);
        break;
      case "STATUS":
        if (plugin.status !== undefined) await plugin.status(ctx);
        break;
    }
    return { exitCode: 0, stdout: "", stderr: "" };
  } catch (e) {
    const err = mapError(e);
    return { exitCode: 1, stdout: JSON.stringify(err.toJSON(confVersionOf(io.stdin))), stderr: "", error: err };
  }
}
