// The agent's warm pools, one per tcnp-ipam configuration it serves (mix mode; see ipam/pool.ts),
// created on the first request for a configuration or from the conf dir at start, kept up by a
// timer. Each pool works with a session of its own, made with the agent's dependencies.
import type { NetConf } from "../cni/netconf.js";
import { EniPool } from "../ipam/eni-pool.js";
import { MixPool, poolKeyOf, type PoolEvents, type PoolView } from "../ipam/pool.js";
import { IpamSession, type AddressPools, type IpamDeps } from "../ipam/session.js";
import type { Allocation } from "../ipam/store.js";

export class AgentPools implements AddressPools {
  readonly #pools = new Map<string, MixPool | EniPool>();
  readonly #deps: IpamDeps;
  readonly #events: PoolEvents;
  #timer: NodeJS.Timeout | undefined;

  constructor(deps: IpamDeps, events: PoolEvents) {
    this.#deps = deps;
    this.#events = events;
  }

  /** The pool of a configuration, made (and recovered from the port's tags) on first use. */
  async poolFor(conf: NetConf): Promise<MixPool | EniPool> {
    const s = new IpamSession(this.#deps, conf);
    const key = poolKeyOf(s.cfg);
    let p = this.#pools.get(key);
    if (p === undefined) {
      const opts = { targets: s.cfg.pool, deadlineMs: s.cfg.pool.deadlineMs, events: this.#events };
      p = s.cfg.mode === "eni" ? new EniPool(s, opts) : new MixPool(s, opts);
      this.#pools.set(key, p);
      try {
        const n = await p.recover();
        if (n > 0) this.#deps.log.info("pool: adopted what Neutron's tags name and no record knew", { adopted: n });
      } catch (e) {
        this.#deps.log.warn("pool: cannot recover from Neutron yet", { error: e });
      }
      p.kick();
    }
    return p;
  }

  async allocate(s: IpamSession, who: { containerId: string; ifname: string }): Promise<Allocation> {
    return (await this.poolFor(s.conf)).allocate(who);
  }

  async release(s: IpamSession, who: { containerId: string; ifname: string }): Promise<boolean> {
    return (await this.poolFor(s.conf)).takeBack(who);
  }

  views(): PoolView[] {
    return [...this.#pools.values()].map((p) => p.view());
  }

  /** What the agent knows of one pod attachment, from every pool it keeps. */
  podView(containerId: string, ifname: string): Array<ReturnType<MixPool["podView"]> & { pool: PoolView }> {
    return [...this.#pools.values()]
      .map((p) => ({ ...p.podView(containerId, ifname), pool: p.view() }))
      .filter((v) => v.allocation !== undefined);
  }

  /** Ready when every pool holds its minimum (the warm target when no minimum is set). */
  ready(): boolean {
    return this.views().every((v) => v.ready);
  }

  start(intervalMs = 1000): void {
    this.#timer = setInterval(() => {
      for (const p of this.#pools.values()) p.kick();
    }, intervalMs);
    this.#timer.unref();
  }

  /**
   * Stop the upkeep and wait (at most `graceMs`) for the cloud work in flight: a port being made
   * is finished and recorded, so nothing is left that only the next agent's recovery would find.
   * The pools stay as they are (records and addresses) for the next agent.
   */
  async stop(graceMs = 20_000): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)));
    const done = Promise.allSettled([...this.#pools.values()].map((p) => p.quiesce())).then(() => false);
    if (await Promise.race([done, late]))
      this.#deps.log.warn("agent stopping with cloud work still in flight; the next agent recovers it", { graceMs });
    clearTimeout(timer);
  }
}
