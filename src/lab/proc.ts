// Processes for the lab: run a command (inside a namespace) and wait, start a detached daemon and
// record its PID, stop one by PID (only if it still is ours).
import { execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import { isOurs, type LabProcess } from "./state.js";

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export function run(
  argv: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {},
): Promise<Ran> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      {
        env: { PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...opts.env },
        encoding: "utf8",
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 8 << 20,
      },
      (err, stdout, stderr) =>
        resolve({
          code: err === null ? 0 : typeof err.code === "number" ? err.code : 1,
          stdout,
          stderr,
          ms: performance.now() - t0,
        }),
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** `ip netns exec NS argv…` (the namespace's name, not its path). */
export const inNetns = (ns: string, argv: string[]): string[] => ["ip", "netns", "exec", ns, ...argv];

/** Start a daemon detached from us, output to `log`; returns its record (ip netns exec execs in place). */
export function startDaemon(
  name: string,
  argv: string[],
  log: string,
  marker: string,
  env?: Record<string, string>,
): LabProcess {
  const fd = fs.openSync(log, "a", 0o600);
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true,
    stdio: ["ignore", fd, fd],
    ...(env === undefined ? {} : { env: { ...process.env, ...env } }),
  });
  fs.closeSync(fd);
  child.unref();
  if (child.pid === undefined) throw new Error(`Cannot start ${name}: ${argv[0]} did not start`);
  return { name, pid: child.pid, marker };
}

export async function stopProcess(p: LabProcess, waitMs = 5000): Promise<"stopped" | "gone" | "not ours"> {
  if (!isOurs(p)) return fs.existsSync(`/proc/${p.pid}`) ? "not ours" : "gone";
  process.kill(p.pid, "SIGTERM");
  const end = Date.now() + waitMs;
  while (Date.now() < end) {
    if (!isOurs(p)) return "stopped";
    await new Promise((r) => setTimeout(r, 50));
  }
  if (isOurs(p)) process.kill(p.pid, "SIGKILL");
  return "stopped";
}
