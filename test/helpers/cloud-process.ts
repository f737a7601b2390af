// A `tcnp cloud` process from the built executable, for e2e tests: started on a free port (or
// inside a namespace), stopped by its PID.
import { spawn, type ChildProcess } from "node:child_process";
import { distBinary } from "./cni.js";

export interface CloudProcess {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

export async function startCloudProcess(
  args: string[],
  opts: { inNetns?: string; env?: Record<string, string> } = {},
): Promise<CloudProcess> {
  const argv =
    opts.inNetns === undefined
      ? [distBinary, "cloud", ...args]
      : ["ip", "netns", "exec", opts.inNetns, distBinary, "cloud", ...args];
  const proc = spawn(argv[0]!, argv.slice(1), {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...opts.env },
  });
  let stderr = "";
  proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`tcnp cloud did not start: ${stderr}`)), 20_000);
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`tcnp cloud exited (${code}): ${stderr}`));
    });
  });
  return {
    url,
    proc,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once("exit", () => resolve());
        proc.kill("SIGTERM");
      }),
  };
}
