// Entry wiring for a CNI plugin process: stdin/env in, result out, one log line per invocation. A
// running node agent serves the request (this process forwards it, as the small tcnp-cni forwarder
// does); with no agent answering, this process serves it itself as the node's one-shot ledger writer.
import * as fs from "node:fs";
import type { CniPluginName } from "../base/names.js";
import { DEFAULT_AGENT_SOCKET, forwardToAgent } from "../agent/protocol.js";
import type { Kernel } from "../kernel/types.js";
import { fileSink } from "../log/file-sink.js";
import { createLogger, type Level } from "../log/logger.js";
import { runLogged } from "../plugins/run.js";
import { newTimings, timedFetch, timedKernel } from "../plugins/timing.js";
import { VERSION } from "../version.js";
import { loadPlugin } from "./registry.js";
import { productionDeps } from "./wiring.js";
import * as path from "node:path";
import {
  addressesWithoutAgent,
  ENFORCING,
  forgetWithoutAgent,
  isolateWithoutAgent,
  type PolicyTarget,
} from "../agent/policy-node.js";
import { isContainerId, policyPart } from "../agent/policy-hook.js";
import { nftApply } from "../kernel/nft.js";
import { lockDirOf } from "../state/records.js";

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

// The agent's answer, or (it took the request and went away) code 11: the runtime's DEL cleans up.
async function forwarded(name: CniPluginName, stdin: string, env: NodeJS.ProcessEnv): Promise<number | undefined> {
  if (env["TCNP_AGENT"] === "off") return undefined;
  const socket = env["TCNP_AGENT_SOCKET"] || DEFAULT_AGENT_SOCKET;
  const req = { op: "cni" as const, plugin: name, env: { ...env } as Record<string, string>, stdin };
  const r = await forwardToAgent(socket, req);
  if ("unreachable" in r) return undefined;
  if ("lost" in r) {
    const msg = {
      cniVersion: "0.4.0",
      code: 11,
      msg: "tcnp forwarder failed",
      details: `${name}: the tcnp agent on ${socket} failed the request: ${r.lost}`,
    };
    process.stdout.write(`${JSON.stringify(msg)}\n`);
    return 1;
  }
  process.stdout.write(r.stdout);
  if (r.stderr !== "") process.stderr.write(r.stderr);
  return r.exitCode;
}

export async function cniProcess(name: CniPluginName): Promise<number> {
  const stdin = readStdin();
  const env = process.env;
  const viaAgent = await forwarded(name, stdin, env);
  if (viaAgent !== undefined) return viaAgent;
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
  // NetworkPolicy without the agent, on a node that enforces it: the pod is recorded for the agent
  // and isolated before it has an interface; its DEL takes that away. Elsewhere: one stat per ADD.
  const policyDir = path.join(path.dirname(lockDirOf(env)), "policy");
  const command = env["CNI_COMMAND"];
  let isolated: PolicyTarget | undefined;
  if (command === "ADD" && fs.existsSync(path.join(policyDir, ENFORCING))) {
    try {
      const part = policyPart(name, env, stdin, "");
      if (part !== undefined && (await isolateWithoutAgent(part, { dir: policyDir, nft: nftApply }))) {
        isolated = part;
        log.warn("no node agent: the pod is isolated until the agent applies its NetworkPolicy", {});
      }
    } catch (e) {
      const msg = `Cannot isolate the pod until the node agent applies its NetworkPolicy: ${e instanceof Error ? e.message : String(e)}`;
      process.stdout.write(`${JSON.stringify({ cniVersion: "1.0.0", code: 999, msg })}\n`);
      return 1;
    }
  }
  const containerId = env["CNI_CONTAINERID"] ?? "";
  if (command === "DEL" && isContainerId(containerId))
    await forgetWithoutAgent(containerId, { dir: policyDir, nft: nftApply }).catch((e: unknown) =>
      log.warn("cannot remove a pod's NetworkPolicy rules", { error: e }),
    );
  const httpFetch = deps.httpFetch;
  deps.httpFetch = (o) => timedFetch(httpFetch(o), timings);
  const outcome = await runLogged(
    {
      add: async (ctx) => (await loadPlugin(name, deps)).add(ctx),
      del: async (ctx) => (await loadPlugin(name, deps)).del(ctx),
      check: async (ctx) => (await loadPlugin(name, deps)).check(ctx),
      gc: async (ctx) => (await loadPlugin(name, deps)).gc?.(ctx),
      status: async (ctx) => (await loadPlugin(name, deps)).status?.(ctx),
    },
    { env, stdin },
    {
      about: `${name} ${VERSION}: tcnp CNI plugin`,
      log,
      timings,
      extra: { netns: env["CNI_NETNS"], uptimeMs: +(process.uptime() * 1000).toFixed(2) },
    },
  );
  kernel?.close();
  if (isolated !== undefined && outcome.exitCode === 0)
    addressesWithoutAgent(isolated.containerId, policyPart(name, env, stdin, outcome.stdout)?.ips ?? [], policyDir);
  process.stdout.write(outcome.stdout);
  if (outcome.stderr !== "") process.stderr.write(outcome.stderr);
  return outcome.exitCode;
}
