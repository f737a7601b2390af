// What a plugin gets from its entry point. Everything with a side effect comes through here, so
// the same plugin code runs in a one-shot CNI process, in tests with fakes, and inside a
// long-running node agent.
import type { Clock } from "../base/clock.js";
import type { Env } from "../cni/env.js";
import type { CniPlugin } from "../cni/skel.js";
import type { Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";

export interface PluginDeps {
  /** The kernel, created on first use (VERSION never pays for netlink). */
  kernel(): Promise<Kernel>;
  log: Logger;
  clock: Clock;
  /** The process environment (OS_* variables, overrides for state paths). */
  env: Env;
  /** The IPAM plugin of this `type`: tcnp-ipam in process, any other by exec from CNI_PATH. */
  ipam(type: string): CniPlugin;
}
