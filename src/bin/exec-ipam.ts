// Delegating to an IPAM plugin binary found on CNI_PATH, as the spec describes: same environment,
// the whole network configuration on stdin, its stderr passed through, its errors kept as they are.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { CniError, CniCode } from "../cni/errors.js";
import type { Env } from "../cni/env.js";
import { parseResult, type CniResult } from "../cni/result.js";
import type { CniPlugin, PluginContext } from "../cni/skel.js";

function find(type: string, paths: readonly string[]): string {
  for (const d of paths) {
    const f = path.join(d, type);
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return f;
    } catch {
      // next directory
    }
  }
  throw new CniError(CniCode.InvalidConfig, `Cannot find IPAM plugin "${type}" in CNI_PATH [${paths.join(":")}]`);
}

function run(ctx: PluginContext, env: Env, type: string, command: string): Promise<string> {
  const bin = find(type, ctx.args.path);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [], { env: { ...env, CNI_COMMAND: command }, stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", (e) =>
      reject(new CniError(CniCode.IoFailure, `Cannot run IPAM plugin "${bin}": ${e.message}`, { cause: e })),
    );
    child.on("close", (code) => {
      if (code === 0) return resolve(out);
      try {
        const j = JSON.parse(out) as { code?: number; msg?: string; details?: string };
        reject(
          new CniError(j.code ?? CniCode.Internal, j.details ?? j.msg ?? `IPAM plugin "${type}" failed`, {
            msg: j.msg ?? "IPAM plugin failed",
          }),
        );
      } catch {
        reject(new CniError(CniCode.Internal, `IPAM plugin "${type}" failed with exit code ${code} and no error JSON`));
      }
    });
    child.stdin.end(JSON.stringify(ctx.conf.raw));
  });
}

export function execIpam(type: string, env: Env): CniPlugin {
  return {
    async add(ctx): Promise<CniResult> {
      return parseResult(JSON.parse(await run(ctx, env, type, "ADD")) as unknown);
    },
    async del(ctx) {
      await run(ctx, env, type, "DEL");
    },
    async check(ctx) {
      await run(ctx, env, type, "CHECK");
    },
    async gc(ctx) {
      await run(ctx, env, type, "GC");
    },
    async status(ctx) {
      await run(ctx, env, type, "STATUS");
    },
  };
}
