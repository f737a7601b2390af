// `tcnp install --bin-dir DIR`: place the executable and one link per program name, atomically.
// A foreign file of the same name (the reference host-device) is kept beside it as NAME.orig.
import * as fs from "node:fs";
import * as path from "node:path";
import { isCniPlugin, PROGRAM_NAMES } from "../base/names.js";
import { writeFileDurably } from "../state/files.js";

export interface InstallResult {
  binary: string;
  links: string[];
  backedUp: string[];
}

export function install(opts: { source: string; binDir: string }): InstallResult {
  const { source, binDir } = opts;
  if (!fs.existsSync(source))
    throw new Error(`Cannot install: executable "${source}" does not exist (run "npm run build")`);
  fs.mkdirSync(binDir, { recursive: true, mode: 0o755 });
  const binary = path.join(binDir, "tcnp");
  const tmp = `${binary}.${process.pid}.tmp`;
  fs.copyFileSync(source, tmp);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, binary);
  // The forwarder built beside the executable: the CNI plugin names run it (README, "Node agent").
  const fwdSource = path.join(path.dirname(source), "tcnp-cni");
  const forwarder = fs.existsSync(fwdSource) && fs.realpathSync(fwdSource) !== fs.realpathSync(source);
  if (forwarder) {
    const fwd = path.join(binDir, "tcnp-cni");
    const ftmp = `${fwd}.${process.pid}.tmp`;
    if (fs.realpathSync(fwdSource) !== (fs.existsSync(fwd) ? fs.realpathSync(fwd) : "")) {
      fs.copyFileSync(fwdSource, ftmp);
      fs.chmodSync(ftmp, 0o755);
      fs.renameSync(ftmp, fwd);
    }
  }
  const links: string[] = [];
  const backedUp: string[] = [];
  for (const name of PROGRAM_NAMES) {
    if (name === "tcnp") continue;
    const link = path.join(binDir, name);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(link);
    } catch {
      st = undefined;
    }
    if (st !== undefined && !st.isSymbolicLink() && !fs.existsSync(`${link}.orig`)) {
      fs.renameSync(link, `${link}.orig`);
      backedUp.push(`${link}.orig`);
    }
    const tmpLink = `${link}.${process.pid}.tmp`;
    fs.rmSync(tmpLink, { force: true });
    fs.symlinkSync(forwarder && isCniPlugin(name) ? "tcnp-cni" : "tcnp", tmpLink);
    fs.renameSync(tmpLink, link);
    links.push(link);
  }
  return { binary, links, backedUp };
}

export interface ConfInstallResult {
  file: string;
  /** Where the configuration holds a secret inline (better: a clouds.yaml `cloud`, or `passwordFile`). */
  inlineSecrets: string[];
}

const SECRET_KEYS = new Set(["password", "applicationCredentialSecret", "token"]);

function secretPaths(v: unknown, at: string, out: string[]): void {
  if (Array.isArray(v)) v.forEach((x, i) => secretPaths(x, `${at}[${i}]`, out));
  else if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      const here = at === "" ? k : `${at}.${k}`;
      if (SECRET_KEYS.has(k) && typeof x === "string" && x !== "") out.push(here);
      else secretPaths(x, here, out);
    }
  }
}

/**
 * Install a CNI network configuration into `confDir`, readable by root only (0600): it may hold
 * the cloud's credentials, and /etc/cni/net.d is world-readable. Written atomically (the runtime
 * may read the directory at any moment) under the source file's name.
 */
export function installConf(opts: { source: string; confDir: string }): ConfInstallResult {
  const text = fs.readFileSync(opts.source, "utf8");
  let conf: unknown;
  try {
    conf = JSON.parse(text);
  } catch (e) {
    throw new Error(`Cannot install "${opts.source}": not JSON (${(e as Error).message})`, { cause: e });
  }
  if (typeof conf !== "object" || conf === null || typeof (conf as Record<string, unknown>)["name"] !== "string") {
    throw new Error(`Cannot install "${opts.source}": a network configuration needs a "name"`);
  }
  fs.mkdirSync(opts.confDir, { recursive: true, mode: 0o755 });
  const file = path.join(opts.confDir, path.basename(opts.source));
  writeFileDurably(file, text);
  fs.chmodSync(file, 0o600);
  const inlineSecrets: string[] = [];
  secretPaths(conf, "", inlineSecrets);
  return { file, inlineSecrets };
}

/**
 * Install a secret file (a `clouds.yaml`) into `dir` for root alone: the directory 0700, the file
 * 0600, written atomically under the source's name. The DaemonSet's init container copies the
 * Secret it mounts to the node this way, so the plugins the runtime runs on the host read it too.
 */
export function installSecret(opts: { source: string; dir: string }): string {
  const text = fs.readFileSync(opts.source, "utf8");
  fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(opts.dir, 0o700);
  const file = path.join(opts.dir, path.basename(opts.source));
  writeFileDurably(file, text);
  fs.chmodSync(file, 0o600);
  return file;
}
