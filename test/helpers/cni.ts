// Running the built executable the way runtimes do: installed into a bin dir, executed directly or
// through cnicaller (Debian's libcni).
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { skipUnlessRequired } from "./root.js";

export const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../..");
export const distBinary = path.join(repoRoot, "dist", "tcnp");
export const cnicallerBinary = path.join(repoRoot, "build", "bin", "cnicaller");
export const REFERENCE_CNI_DIR = "/usr/lib/cni";

/** undefined when the built artefacts exist, else why the e2e layer cannot run. */
export function e2eSkipReason(): string | undefined {
  if (!fs.existsSync(distBinary)) return skipUnlessRequired("dist/tcnp is not built (npm run build)");
  if (!fs.existsSync(cnicallerBinary))
    return skipUnlessRequired("build/bin/cnicaller is not built (scripts/build-cnicaller.sh)");
  return undefined;
}

export interface Sandbox {
  dir: string;
  binDir: string;
  confDir: string;
  cacheDir: string;
  stateDir: string;
  logFile: string;
  cniPath: string;
  cleanup(): void;
}

/** A private CNI bin dir (tcnp installed), conf dir, cache dir and tcnp state dir. */
export function makeSandbox(tag: string): Sandbox {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tcnp-${tag}-`));
  const binDir = path.join(dir, "bin");
  const r = spawnSync(distBinary, ["install", "--bin-dir", binDir], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tcnp install failed: ${r.stderr}`);
  for (const sub of ["net.d", "cache", "state"]) fs.mkdirSync(path.join(dir, sub));
  return {
    dir,
    binDir,
    confDir: path.join(dir, "net.d"),
    cacheDir: path.join(dir, "cache"),
    stateDir: path.join(dir, "state"),
    logFile: path.join(dir, "tcnp.log"),
    cniPath: `${binDir}:${REFERENCE_CNI_DIR}`,
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
  json?: Record<string, unknown>;
}

function parsed(status: number | null, stdout: string, stderr: string): Run {
  const out: Run = { status: status ?? -1, stdout, stderr };
  try {
    const j = JSON.parse(stdout) as unknown;
    if (typeof j === "object" && j !== null) out.json = j as Record<string, unknown>;
  } catch {
    // not JSON
  }
  return out;
}

/** Exec one plugin directly, as a runtime does, optionally inside a namespace (`ip netns exec`). */
export function execPlugin(
  sb: Sandbox,
  plugin: string,
  env: Record<string, string>,
  stdin: string,
  opts: { inNetns?: string } = {},
): Run {
  const bin = path.join(sb.binDir, plugin);
  const argv = opts.inNetns === undefined ? [bin] : ["ip", "netns", "exec", opts.inNetns, bin];
  const r = spawnSync(argv[0]!, argv.slice(1), {
    input: stdin,
    encoding: "utf8",
    timeout: 60_000,
    env: {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      TCNP_LOG_FILE: sb.logFile,
      TCNP_STATE_DIR: sb.stateDir,
      TCNP_LOCK_DIR: path.join(sb.stateDir, "locks"),
      CNI_PATH: sb.cniPath,
      ...env,
    },
  });
  return parsed(r.status, r.stdout, r.stderr);
}

/** Run cnicaller (libcni) with the sandbox's conf/cache/bin dirs, optionally inside a namespace. */
export function cnicaller(
  sb: Sandbox,
  args: string[],
  opts: { inNetns?: string; env?: Record<string, string> } = {},
): Run {
  const argv =
    opts.inNetns === undefined
      ? [cnicallerBinary, ...args]
      : ["ip", "netns", "exec", opts.inNetns, cnicallerBinary, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), {
    encoding: "utf8",
    timeout: 120_000,
    env: {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      NETCONFPATH: sb.confDir,
      CNI_PATH: sb.cniPath,
      CNI_CACHEDIR: sb.cacheDir,
      TCNP_LOG_FILE: sb.logFile,
      TCNP_STATE_DIR: sb.stateDir,
      TCNP_LOCK_DIR: path.join(sb.stateDir, "locks"),
      ...opts.env,
    },
  });
  return parsed(r.status, r.stdout, r.stderr);
}

export function writeConf(sb: Sandbox, file: string, conf: unknown): void {
  fs.writeFileSync(path.join(sb.confDir, file), JSON.stringify(conf, null, 2));
}
