// Where a plugin process spends its time, for the benchmarks' breakdown: HTTP requests to the
// cloud and kernel calls, wrapped at the entry point so plugin code knows nothing of it.
import { performance } from "node:perf_hooks";
import type { Kernel } from "../kernel/types.js";
import type { HttpFetch } from "../openstack/http.js";

export interface Timings {
  cloudMs: number;
  cloudCalls: number;
  kernelMs: number;
  kernelCalls: number;
}

export const newTimings = (): Timings => ({ cloudMs: 0, cloudCalls: 0, kernelMs: 0, kernelCalls: 0 });

export function timedFetch(f: HttpFetch, t: Timings): HttpFetch {
  return async (req, opts) => {
    const t0 = performance.now();
    try {
      return await f(req, opts);
    } finally {
      t.cloudMs += performance.now() - t0;
      t.cloudCalls++;
    }
  };
}

export function timedKernel(k: Kernel, t: Timings, onCall?: (op: string, ms: number) => void): Kernel {
  return new Proxy(k, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== "function" || prop === "close") return v;
      return (...args: unknown[]) => {
        const t0 = performance.now();
        const out = (v as (...a: unknown[]) => unknown).apply(target, args);
        const done = (): void => {
          const d = performance.now() - t0;
          t.kernelMs += d;
          t.kernelCalls++;
          onCall?.(String(prop), d);
        };
        if (out instanceof Promise) return out.finally(done);
        done();
        return out;
      };
    },
  });
}
