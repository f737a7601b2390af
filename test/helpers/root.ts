// What the machine can do for root-only test layers, with the reason when it cannot.
import { spawnSync } from "node:child_process";

export const isRoot = (): boolean => process.getuid?.() === 0;

export function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** undefined when root network tests can run, else why not (for `skip`). */
export function rootSkipReason(...commands: string[]): string | undefined {
  if (!isRoot()) return "needs root (network namespaces)";
  for (const c of ["ip", ...commands]) if (!hasCommand(c)) return `needs "${c}" (install it, or run scripts/test.sh which does)`;
  return undefined;
}
