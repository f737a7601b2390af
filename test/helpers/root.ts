// What the machine can do for root-only test layers, with the reason when it cannot.
import { spawnSync } from "node:child_process";

export const isRoot = (): boolean => process.getuid?.() === 0;

export function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/**
 * A layer's skip reason, unless the run requires every layer (scripts/test.sh as root sets
 * TCNP_TEST_REQUIRE_ALL=1): then a missing prerequisite fails the run instead of skipping quietly.
 */
export function skipUnlessRequired(reason: string | undefined): string | undefined {
  if (reason !== undefined && process.env["TCNP_TEST_REQUIRE_ALL"] === "1")
    throw new Error(`this layer is required in this run but cannot run: ${reason}`);
  return reason;
}

/** undefined when root network tests can run, else why not (for `skip`). */
export function rootSkipReason(...commands: string[]): string | undefined {
  if (!isRoot()) return skipUnlessRequired("needs root (network namespaces)");
  for (const c of ["ip", ...commands])
    if (!hasCommand(c)) return skipUnlessRequired(`needs "${c}" (install it, or run scripts/test.sh which does)`);
  return undefined;
}
