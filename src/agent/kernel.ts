// The kernel as the agent's requests see it: the agent's one long-lived netlink kernel, timed per
// request, with the gratuitous ARP sent after the answer (best effort, never undone).
import type { Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import { timedKernel, type Timings } from "../plugins/timing.js";

export function requestKernel(kernel: Kernel, timings: Timings, log: Logger): Kernel {
  const timed = timedKernel(kernel, timings, (op, ms) => log.debug("kernel call", { op, ms: +ms.toFixed(2) }));
  const announceLater: Kernel["announce"] = (ns, dev, ip) => {
    setImmediate(() =>
      kernel.announce(ns, dev, ip).catch((e: unknown) => log.warn("announce failed", { ip, dev, error: e })),
    );
    return Promise.resolve();
  };
  return new Proxy(timed, {
    get(t, prop) {
      if (prop === "announce") return announceLater;
      const v = Reflect.get(t, prop) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}
