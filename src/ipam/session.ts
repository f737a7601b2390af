// What one tcnp-ipam configuration works with on this node: its parsed config, the cloud clients
// (a shared token store and its lock) and the node cache. The wiring (files, HTTP, locks) comes
// from IpamDeps, never from here; the node's address ledger is written by its one writer (node.ts).
import type { Clock } from "../base/clock.js";
import type { Env } from "../cni/env.js";
import type { NetConf } from "../cni/netconf.js";
import type { Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import { createClients, type Clients } from "../openstack/clients.js";
import type { CredentialSources } from "../openstack/credentials.js";
import type { HttpFetch } from "../openstack/http.js";
import type { NodeFetchOptions } from "../openstack/node-fetch.js";
import type { TokenStore } from "../openstack/token-cache.js";
import type { Lock } from "../state/lock.js";
import { lockDirOf } from "../state/records.js";
import { parseIpamConfig, type IpamConfig } from "./config.js";
import { resolveIdentity } from "./identity.js";
import type { LedgerWriter } from "./node.js";
import type { NodeCache } from "./node-cache.js";

export interface IpamDeps {
  /** The kernel, created on first use. */
  kernel(): Promise<Kernel>;
  log: Logger;
  clock: Clock;
  env: Env;
  httpFetch(opts: NodeFetchOptions): HttpFetch;
  sources: CredentialSources;
  readFile(file: string): string | undefined;
  /** The node-wide lock directory's lock (the token cache's refreshes, the one-shot writer). */
  lockFor(dir: string): Lock;
  tokensFor(dir: string): TokenStore;
  cacheFor(stateDir: string): NodeCache;
  /** The random source of retry jitter (Math.random when absent). */
  random?: () => number;
  /** The node's one writer of its address ledgers: the node agent, or this process for one request. */
  writer: LedgerWriter;
}

export class IpamSession {
  readonly cfg: IpamConfig;
  readonly clients: Clients;
  readonly fetch: HttpFetch;
  readonly cache: NodeCache;
  readonly conf: NetConf;
  readonly deps: IpamDeps;

  constructor(deps: IpamDeps, conf: NetConf) {
    this.deps = deps;
    this.conf = conf;
    const cfg = parseIpamConfig(conf, deps.sources);
    if (cfg.unknownKeys.length > 0) deps.log.warn("ignoring unknown configuration keys", { keys: cfg.unknownKeys });
    const fetchOpts: NodeFetchOptions = { timeoutMs: cfg.timeouts.apiMs };
    if (cfg.credentials.caCert !== undefined) fetchOpts.caCert = cfg.credentials.caCert;
    if (cfg.credentials.insecure !== undefined) fetchOpts.insecure = cfg.credentials.insecure;
    this.cfg = cfg;
    this.fetch = deps.httpFetch(fetchOpts);
    this.clients = createClients({
      auth: cfg.credentials.auth,
      fetch: this.fetch,
      clock: deps.clock,
      log: deps.log,
      timeoutMs: cfg.timeouts.apiMs,
      tokens: deps.tokensFor(`${cfg.stateDir}/tokens`),
      lock: deps.lockFor(lockDirOf(deps.env)),
    });
    this.cache = deps.cacheFor(cfg.stateDir);
  }

  /** This VM's Nova server ID. */
  async serverId(): Promise<string> {
    const d = this.deps;
    const id = await resolveIdentity({
      cfg: this.cfg,
      fetch: this.fetch,
      nova: this.clients.nova,
      neutron: this.clients.neutron,
      kernel: await d.kernel(),
      log: d.log,
      readFile: d.readFile,
    });
    d.log.debug("identity", { serverId: id.serverId, source: id.source });
    return id.serverId;
  }
}
