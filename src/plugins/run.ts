// One CNI request run and accounted for, the same way in a plugin process and in the node agent:
// the plugin's outcome, where its time went (cloud and kernel calls) and one "command done" (or
// "failed") log line with those figures.
import { performance } from "node:perf_hooks";
import { runCni, type CniIo, type CniPlugin, type CniOutcome } from "../cni/skel.js";
import type { Logger } from "../log/logger.js";
import { toCniError } from "./errors.js";
import type { Timings } from "./timing.js";

export async function runLogged(
  plugin: CniPlugin,
  io: CniIo,
  o: { about: string; log: Logger; timings: Timings; extra?: Record<string, unknown> },
): Promise<CniOutcome & { seconds: number }> {
  const t0 = performance.now();
  const out = await runCni(plugin, io, { about: o.about, toCniError });
  const seconds = (performance.now() - t0) / 1000;
  const t = o.timings;
  const fields = {
    ...o.extra,
    exitCode: out.exitCode,
    durationMs: +(seconds * 1000).toFixed(2),
    cloudMs: +t.cloudMs.toFixed(2),
    cloudCalls: t.cloudCalls,
    kernelMs: +t.kernelMs.toFixed(2),
    kernelCalls: t.kernelCalls,
  };
  if (out.error !== undefined)
    o.log.error("CNI command failed", { ...fields, code: out.error.code, details: out.error.details });
  else if (io.env["CNI_COMMAND"] !== "VERSION") o.log.info("CNI command done", fields);
  return { ...out, seconds };
}
