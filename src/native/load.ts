// Loads the native addons (tcnp's own syscalls, and netlink's socket) wherever the code runs:
// inside the single executable they are SEA assets, written once to a content-addressed file and
// dlopen'd; from a build tree they sit in a `native/` folder next to the code.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as sea from "node:sea";
import { fileURLToPath } from "node:url";

export type NativeName = "tcnp" | "netlink";

export interface TcnpNative {
  setns(fd: number, nstype: number): void;
  flock(fd: number, op: number): number;
  /** A unix socket peer's [pid, uid, gid] (pid 0: in a PID namespace this process cannot see). */
  peerCred(fd: number): [number, number, number];
  sendGarp(ifindex: number, mac: Buffer, ip: Buffer, inThread?: boolean): void;
  nlOpen(): number;
  nlTransact(fd: number, msg: Buffer, seq: number): Buffer[];
  readonly CLONE_NEWNET: number;
  readonly LOCK_EX: number;
  readonly LOCK_NB: number;
  readonly LOCK_UN: number;
  readonly EWOULDBLOCK: number;
}

const loaded = new Map<NativeName, unknown>();

function dlopen(file: string): unknown {
  const mod = { exports: {} as unknown };
  process.dlopen(mod, file);
  return mod.exports;
}

function cacheDir(): string {
  const fromEnv = process.env["TCNP_NATIVE_CACHE"];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  return process.getuid?.() === 0 ? "/run/tcnp/native" : path.join(process.env["TMPDIR"] ?? "/tmp", "tcnp-native");
}

/**
 * Whether a cached addon may be loaded: a regular file owned by this user in a directory owned by
 * this user, neither writable by anyone else, holding exactly the asset's bytes. A shared
 * temporary directory is anyone's: a file planted there must never be dlopen'd.
 */
export function isTrustedCacheFile(file: string, bytes: Buffer, uid = process.getuid?.() ?? 0): boolean {
  try {
    const st = fs.lstatSync(file);
    const dir = fs.lstatSync(path.dirname(file));
    if (!st.isFile() || !dir.isDirectory()) return false;
    if (st.uid !== uid || dir.uid !== uid || (st.mode & 0o022) !== 0 || (dir.mode & 0o022) !== 0) return false;
    return fs.readFileSync(file).equals(bytes);
  } catch {
    return false;
  }
}

// Write the asset to <cache>/<name>-<sha256 prefix>.node unless that exact, trusted file is
// already there; where the cache cannot be trusted, load from a private directory of our own.
function extractAsset(name: NativeName): string {
  const bytes = Buffer.from(sea.getRawAsset(`${name}.node`) as ArrayBuffer);
  const digest = createHash("sha256").update(bytes).digest("hex").slice(0, 16);
  const dir = cacheDir();
  const file = path.join(dir, `${name}-${digest}.node`);
  if (isTrustedCacheFile(file, bytes)) return file;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, bytes, { mode: 0o700 });
    fs.renameSync(tmp, file);
    if (isTrustedCacheFile(file, bytes)) return file;
  } catch {
    // someone else's directory: fall through to a private one
  }
  const own = fs.mkdtempSync(path.join(process.env["TMPDIR"] ?? "/tmp", "tcnp-native-"));
  const privateFile = path.join(own, `${name}.node`);
  fs.writeFileSync(privateFile, bytes, { mode: 0o700 });
  return privateFile;
}

function buildTreeFile(name: NativeName): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const dirs = [process.env["TCNP_NATIVE_DIR"], path.join(here, "native"), path.join(here, "..", "native"), path.join(here, "..", "..", "native")];
  for (const d of dirs) {
    if (d === undefined || d === "") continue;
    const f = path.join(d, `${name}.node`);
    if (fs.existsSync(f)) return f;
  }
  throw new Error(`Cannot find native addon "${name}.node" (run "npm run build")`);
}

export function loadNative(name: NativeName): unknown {
  let m = loaded.get(name);
  if (m === undefined) {
    m = dlopen(sea.isSea() ? extractAsset(name) : buildTreeFile(name));
    loaded.set(name, m);
  }
  return m;
}

export const tcnpNative = (): TcnpNative => loadNative("tcnp") as TcnpNative;
