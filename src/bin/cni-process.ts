// Entry wiring for a CNI plugin process: stdin/env in, result out, one log line per invocation.
import * as fs from "node:fs";
import { performance } from "node:perf_hooks";
import { runCni } from "../cni/skel.js";
import type { CniPluginName } from "../base/names.js";
import type { Kernel } from "../kernel/types.js";
import { fileSink } from "../log/file-sink.js";
import { createLogger, type Level } from "../log/logger.js";
import { loadPlugin } from "./registry.js";
import { toCniError } from "../plugins/errors.js";
import { productionDeps } from "./wiring.js";
import { VERSION } from "../version.js";
import { newTimings, timedFetch, timedKernel } from "./timing.js";

function readStdin(): string {
  try {
    return fs.readFileSync(0, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EAGAIN" || code === "EOF" || code === "ENXIO") return "";
    throw e;
  }
}

// Where to log: TCNP_LOG_FILE, else the config's `logFile` (top level or in `ipam`), else the default.
function logSettings(stdin: string, env: NodeJS.ProcessEnv): { file: string; level: Level } {
  let file = env["TCNP_LOG_FILE"];
  let level = env["TCNP_LOG_LEVEL"] as Level | undefined;
  try {
    const c = JSON.parse(stdin) as Record<string, unknown>;
    const ipam = (c["ipam"] ?? {}) as Record<string, unknown>;
    file ??= (
      typeof c["logFile"] === "string"
        ? c["logFile"]
        : typeof ipam["logFile"] === "string"
          ? ipam["logFile"]
          : undefined
    ) as string | undefined;
    level ??= (c["logLevel"] ?? ipam["logLevel"]) as Level | undefined;
  } catch {
    // malformed config: the plugin reports it; log to the default file
  }
  return { file: file ?? "/var/log/tcnp/cni.log", level: level ?? "info" };
}

export async function cniProcess(name: CniPluginName): Promise<number> {
  const t0 = performance.now();
  const stdin = readStdin();
  const env = process.env;
  const settings = logSettings(stdin, env);
  const log = createLogger(fileSink(settings.file), { level: settings.level }).child({
    plugin: name,
    pid: process.pid,
    command: env["CNI_COMMAND"],
    containerId: env["CNI_CONTAINERID"],
    ifname: env["CNI_IFNAME"],
  });
  let kernel: Kernel | undefined;
  let timedK: Kernel | undefined;
  const timings = newTimings();
  const deps = productionDeps({
    env,
    log,
    kernel: async (): Promise<Kernel> => {
      if (kernel === undefined) {
        const { NetlinkKernel } = await import("../kernel/netlink-kernel.js");
        kernel = await NetlinkKernel.create();
        timedK = timedKernel(
          kernel,
          timings,
          settings.level === "debug" ? (op, ms) => log.debug("kernel call", { op, ms: +ms.toFixed(2) }) : undefined,
        );
      }
      return timedK!;
    },
  });
  const httpFetch = deps.httpFetch;
  deps.httpFetch = (o) => timedFetch(httpFetch(o), timings);
  const outcome = await runCni(
    {
      add: async (ctx) => (await loadPlugin(name, deps)).add(ctx),
      del: async (ctx) => (await loadPlugin(name, deps)).del(ctx),
      check: async (ctx) => (await loadPlugin(name, deps)).check(ctx),
      gc: async (ctx) => (await loadPlugin(name, deps)).gc?.(ctx),
      status: async (ctx) => (await loadPlugin(name, deps)).status?.(ctx),
    },
    { env, stdin },
    { about: `${name} ${VERSION}: tcnp CNI plugin`, toCniError },
  );
  kernel?.close();
  process.stdout.write(outcome.stdout);
  if (outcome.stderr !== "") process.stderr.write(outcome.stderr);
  const fields = {
    netns: env["CNI_NETNS"],
    exitCode: outcome.exitCode,
    durationMs: +(performance.now() - t0).toFixed(2),
    uptimeMs: +(process.uptime() * 1000).toFixed(2),
    cloudMs: +timings.cloudMs.toFixed(2),
    cloudCalls: timings.cloudCalls,
    kernelMs: +timings.kernelMs.toFixed(2),
    kernelCalls: timings.kernelCalls,
  };
  if (outcome.error !== undefined)
    log.error("CNI command failed", { ...fields, code: outcome.error.code, details: outcome.error.details });
  else if (env["CNI_COMMAND"] !== "VERSION") log.info("CNI command done", fields);
  return outcome.exitCode;
}
