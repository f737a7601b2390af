// Production dependencies for plugins and tcnp-ipam: node:http, files, flock, the kernel on demand.
import * as fs from "node:fs";
import type { Env } from "../cni/env.js";
import type { CniPlugin } from "../cni/skel.js";
import type { IpamDeps } from "../ipam/plugin.js";
import { OneShotWriter } from "../ipam/node.js";
import { NodeCache } from "../ipam/node-cache.js";
import { FileTokenStore } from "../openstack/token-cache.js";
import type { Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import { fileSources } from "../openstack/credentials.js";
import { nodeFetch } from "../openstack/node-fetch.js";
import { FileIntentLocks, FileLock } from "../state/lock.js";
import { lockDirOf } from "../state/records.js";
import { systemClock } from "../base/clock.js";
import type { PluginDeps } from "../plugins/deps.js";
import { execIpam } from "./exec-ipam.js";

export type NodeDeps = IpamDeps & PluginDeps;

export function productionDeps(opts: { env: Env; log: Logger; kernel: () => Promise<Kernel> }): NodeDeps {
  let ipam: CniPlugin | undefined;
  const deps: NodeDeps = {
    kernel: opts.kernel,
    log: opts.log,
    clock: systemClock,
    env: opts.env,
    httpFetch: nodeFetch,
    sources: fileSources(opts.env),
    readFile: (f) => {
      try {
        return fs.readFileSync(f, "utf8");
      } catch {
        return undefined;
      }
    },
    lockFor: (dir) => new FileLock(dir, systemClock),
    // No agent answered this request: this process is the node's ledger writer for it, under the lock.
    writer: new OneShotWriter(new FileLock(lockDirOf(opts.env), systemClock), new FileIntentLocks(lockDirOf(opts.env))),
    tokensFor: (dir) => new FileTokenStore(dir),
    cacheFor: (stateDir) => new NodeCache(stateDir),
    ipam: (type) => {
      if (type !== "tcnp-ipam") return execIpam(type, opts.env);
      // tcnp-ipam is this executable: run it in process instead of paying a second start-up.
      ipam ??= lazyIpam(deps);
      return ipam;
    },
  };
  return deps;
}

function lazyIpam(deps: IpamDeps): CniPlugin {
  const load = async (): Promise<CniPlugin> => (await import("../ipam/plugin.js")).createIpam(deps);
  return {
    add: async (c) => (await load()).add(c),
    del: async (c) => (await load()).del(c),
    check: async (c) => (await load()).check(c),
    gc: async (c) => (await load()).gc?.(c),
    status: async (c) => (await load()).status?.(c),
  };
}
