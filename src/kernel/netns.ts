// Entering a network namespace from Node. Netlink sockets, AF_PACKET sockets, forked children and
// /proc/sys/net lookups belong to the namespace of the thread that creates them, so we switch the
// main thread, do synchronous work, and switch back before anything can yield. libuv's threadpool
// threads never move; async fs work must not be done inside (research/toolchain.md §2).
import * as fs from "node:fs";
import { tcnpNative } from "../native/load.js";
import { HOST, KernelError, type Netns } from "./types.js";

let selfFd: number | undefined;

/** An fd on the namespace the process started in, opened once. */
export function hostNetnsFd(): number {
  if (selfFd === undefined) selfFd = fs.openSync("/proc/thread-self/ns/net", "r");
  return selfFd;
}

export function openNetns(ns: Netns): number {
  if (ns === HOST) return fs.openSync(`/proc/self/fd/${hostNetnsFd()}`, "r");
  try {
    return fs.openSync(ns, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "EIO";
    throw new KernelError("open the network namespace", ns, code === "ENOENT" ? "ENOENT_NETNS" : code, { cause: e });
  }
}

/** Run `fn` with the main thread inside `ns`. `fn` must be synchronous. */
export function withNetns<T>(ns: Netns, fn: () => T): T {
  if (ns === HOST) return fn();
  const native = tcnpNative();
  const back = hostNetnsFd();
  const target = openNetns(ns);
  try {
    try {
      native.setns(target, native.CLONE_NEWNET);
    } catch (e) {
      throw new KernelError("enter the network namespace", ns, (e as NodeJS.ErrnoException).code ?? "EIO", {
        cause: e,
      });
    }
    try {
      const out = fn();
      if (out instanceof Promise) throw new TypeError("withNetns() needs a synchronous function");
      return out;
    } finally {
      native.setns(back, native.CLONE_NEWNET);
    }
  } finally {
    fs.closeSync(target);
  }
}
