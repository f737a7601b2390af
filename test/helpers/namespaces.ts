// Fresh, uniquely named network namespaces for one test file, always removed afterwards: at the
// end of the file, and on exit/signals if the run dies first.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";

const created = new Set<string>();
let seq = 0;
let hooked = false;

function removeAll(): void {
  for (const name of created) {
    spawnSync("ip", ["netns", "delete", name], { stdio: "ignore" });
    created.delete(name);
  }
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", removeAll);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      removeAll();
      process.exit(130);
    });
  }
}

/** A unique namespace name (tests of one run never collide, nor with the machine's own). */
export function nsName(tag: string): string {
  return `tcnpt-${process.pid}-${++seq}-${tag}`.slice(0, 40);
}

/** Create a namespace by name; returns its path. */
export function addNetns(tag: string): { name: string; path: string } {
  hook();
  const name = nsName(tag);
  const r = spawnSync("ip", ["netns", "add", name], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
  created.add(name);
  return { name, path: `/var/run/netns/${name}` };
}

/** Track a namespace created some other way (e.g. through the Kernel port) for cleanup. */
export function trackNetns(name: string): void {
  hook();
  created.add(name);
}

export function deleteNetns(name: string): void {
  spawnSync("ip", ["netns", "delete", name], { stdio: "ignore" });
  created.delete(name);
}

export function cleanupNamespaces(): void {
  removeAll();
}

export const netnsExists = (name: string): boolean => fs.existsSync(`/var/run/netns/${name}`);

/** Run a command inside a namespace; returns stdout (throws with stderr on failure). */
export function nsExec(
  name: string,
  argv: string[],
  opts: { allowFail?: boolean; timeoutMs?: number } = {},
): { ok: boolean; out: string; err: string } {
  const r = spawnSync("ip", ["netns", "exec", name, ...argv], { encoding: "utf8", timeout: opts.timeoutMs ?? 20_000 });
  const ok = r.status === 0;
  if (!ok && opts.allowFail !== true) throw new Error(`${argv.join(" ")} in ${name} failed (${r.status}): ${r.stderr}`);
  return { ok, out: r.stdout ?? "", err: r.stderr ?? "" };
}

export function ping(from: string, to: string, opts: { count?: number; timeoutS?: number } = {}): boolean {
  return nsExec(from, ["ping", "-c", String(opts.count ?? 1), "-W", String(opts.timeoutS ?? 2), "-q", to], {
    allowFail: true,
  }).ok;
}
