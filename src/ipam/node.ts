// The node's one writer of its address ledgers. Either the resident node agent holds the node lock
// for its lifetime and keeps the ledgers and pools in memory, or — no agent answering — a plugin
// process takes the same lock for one request and runs the same pool code on the ledger as it
// finds it (a one-shot agent). No two processes ever write a ledger at once, and nothing depends
// on reading another process's PID: the kernel releases a dead writer's lock (flock), and every
// intent a new writer finds is one whose writer is gone.
import { createHash } from "node:crypto";
import { tryAgainLater } from "../cni/errors.js";
import type { IntentLocks, Lock } from "../state/lock.js";
import { LockError, MemoryLock } from "../state/lock.js";
import type { IpamConfig } from "./config.js";
import { openLedger, type OpenLedger } from "./ledger-files.js";
import { belongsTo, type Owner } from "./ledger/records.js";
import { EniOps } from "./pool/eni-ops.js";
import { MixOps } from "./pool/mix-ops.js";
import type { PoolContext } from "./pool/ops.js";
import { Pool, type PoolEvents, type PoolView } from "./pool/pool.js";
import { IpamSession, type IpamDeps } from "./session.js";

/** The node lock's name: every writer of the node's ledgers takes it (plugins of earlier versions too). */
export const NODE_LOCK = "ipam";

export interface LedgerWriter {
  /** Run `fn` with this configuration's pool, as the node's one writer. */
  withPool<T>(s: IpamSession, fn: (p: Pool) => Promise<T>): Promise<T>;
}

/**
 * A configuration's identity for pooling: everything that changes what an address or a port is
 * (state, mode, networks, subnets, security groups, credentials and cloud) — two configurations
 * that differ in any of it never share a pool.
 */
export const poolKeyOf = (cfg: IpamConfig): string =>
  JSON.stringify([
    cfg.stateDir,
    cfg.mode,
    cfg.networks,
    cfg.subnets,
    cfg.securityGroups ?? null,
    cfg.nodeBlockPrefix ?? null,
    // the credentials and cloud, as a digest: a pool's key is shown (agent status), its secrets never
    createHash("sha256").update(JSON.stringify(cfg.credentials)).digest("hex").slice(0, 16),
  ]);

function makePool(
  s: IpamSession,
  ledger: OpenLedger["ledger"],
  o: {
    resident: boolean;
    portLock: Lock;
    unlocked: PoolContext["unlocked"];
    events?: PoolEvents;
    defer?: (f: () => void) => void;
  },
): Pool {
  const ctx: PoolContext = {
    s,
    ledger,
    mine: belongsTo(s.cfg.mode, s.cfg.networks),
    now: () => s.deps.clock.now(),
    resident: o.resident,
    portLock: o.portLock,
    unlocked: o.unlocked,
  };
  const ops = s.cfg.mode === "eni" ? new EniOps(ctx) : new MixOps(ctx);
  return new Pool(poolKeyOf(s.cfg), ctx, ops, {
    targets: s.cfg.pool,
    deadlineMs: s.cfg.pool.deadlineMs,
    ...(o.events === undefined ? {} : { events: o.events }),
    ...(o.defer === undefined ? {} : { defer: o.defer }),
  });
}

/**
 * A plugin process with no agent answering: the node lock for one request, the ledger as found.
 * Intents another plugin process works on without the node lock (it holds their intent locks) are
 * not this one's to finish.
 */
export class OneShotWriter implements LedgerWriter {
  readonly #lock: Lock;
  readonly #intents: IntentLocks;
  readonly #open: (stateDir: string) => OpenLedger;
  /** `open`: where a state directory's ledger comes from (its files; a test's journal in memory). */
  constructor(lock: Lock, intents: IntentLocks, o: { open?: (stateDir: string) => OpenLedger } = {}) {
    this.#lock = lock;
    this.#intents = intents;
    this.#open = o.open ?? openLedger;
  }

  async #acquire(s: IpamSession): Promise<() => void> {
    try {
      return await this.#lock.acquire(NODE_LOCK, { timeoutMs: s.cfg.timeouts.lockMs });
    } catch (e) {
      if (!(e instanceof LockError && e.kind === "busy")) throw e;
      throw new LockError(
        "busy",
        `${e.message} (a running tcnp agent holds it for as long as it runs: its socket serves this request unless TCNP_AGENT=off)`,
      );
    }
  }

  async withPool<T>(s: IpamSession, fn: (p: Pool) => Promise<T>): Promise<T> {
    let release = await this.#acquire(s);
    const elsewhere = (k: string): boolean => this.#intents.heldElsewhere(k);
    let open: OpenLedger | undefined;
    try {
      open = this.#open(s.cfg.stateDir);
      const o = open;
      o.ledger.markForeign(elsewhere);
      const unlocked = async <R>(key: string, work: () => Promise<R>): Promise<R> => {
        const mine = this.#intents.tryHold(key);
        if (mine === undefined) throw tryAgainLater(`Another tcnp process is working on ${key}`);
        o.close();
        release();
        try {
          return await work();
        } finally {
          try {
            // Taken back however long it takes: no ledger write happens without it. (Should an agent
            // have started meanwhile, it holds the lock; the runtime kills this process at its
            // deadline, and the agent finishes the intent then.)
            release = await this.#lock.acquire(NODE_LOCK, { timeoutMs: Number.MAX_SAFE_INTEGER });
            o.reopen(elsewhere);
          } finally {
            // The intent's lock goes once the node lock is back: no one sees the intent between.
            mine();
          }
        }
      };
      return await fn(makePool(s, o.ledger, { resident: false, portLock: new MemoryLock(), unlocked }));
    } finally {
      open?.close();
      release();
    }
  }
}

/**
 * The node agent's ledgers and pools, kept in memory for as long as it holds the node lock: one pool
 * per configuration (made on first use, or from the conf dir at start), its upkeep on a timer.
 */
export class ResidentWriter implements LedgerWriter {
  readonly #deps: IpamDeps;
  readonly #events: PoolEvents | undefined;
  readonly #defer: ((f: () => void) => void) | undefined;
  readonly #pools = new Map<string, Pool>();
  readonly #ledgers = new Map<string, OpenLedger>();
  readonly #portLock = new MemoryLock();
  readonly #open: (stateDir: string) => OpenLedger;
  readonly #intents: IntentLocks;
  #timer: NodeJS.Timeout | undefined;

  /** `deps`: the pools' own dependencies (their log, fetch and kernel), not a request's. */
  constructor(
    deps: IpamDeps,
    intents: IntentLocks,
    o: { events?: PoolEvents; defer?: (f: () => void) => void; open?: (stateDir: string) => OpenLedger } = {},
  ) {
    this.#deps = deps;
    this.#intents = intents;
    this.#events = o.events;
    this.#defer = o.defer;
    this.#open = o.open ?? openLedger;
  }

  /**
   * Intents a plugin process was working on without the node lock when this agent took it: not
   * orphans while it holds their locks (it cannot finish them while the agent runs: it gives up,
   * and the agent's upkeep finishes them once it has).
   */
  #refresh(): void {
    for (const l of this.#ledgers.values()) l.ledger.recheckForeign((k) => this.#intents.heldElsewhere(k));
  }

  async withPool<T>(s: IpamSession, fn: (p: Pool) => Promise<T>): Promise<T> {
    return fn(this.poolFor(s.conf));
  }

  /** The pool of a configuration, made on first use; its first upkeep compares it with the cloud. */
  poolFor(conf: IpamSession["conf"]): Pool {
    const s = new IpamSession(this.#deps, conf);
    const key = poolKeyOf(s.cfg);
    let p = this.#pools.get(key);
    if (p === undefined) {
      let open = this.#ledgers.get(s.cfg.stateDir);
      if (open === undefined) {
        open = this.#open(s.cfg.stateDir);
        open.ledger.markForeign((k) => this.#intents.heldElsewhere(k));
        this.#ledgers.set(s.cfg.stateDir, open);
      }
      p = makePool(s, open.ledger, {
        resident: true,
        portLock: this.#portLock,
        unlocked: (_key, work) => work(),
        ...(this.#events === undefined ? {} : { events: this.#events }),
        ...(this.#defer === undefined ? {} : { defer: this.#defer }),
      });
      this.#pools.set(key, p);
      p.kick();
    }
    return p;
  }

  pools(): Pool[] {
    return [...this.#pools.values()];
  }

  views(): PoolView[] {
    return this.pools().map((p) => p.view());
  }

  /** What the agent knows of one pod attachment, from every pool it keeps. */
  podView(o: Owner): Array<ReturnType<Pool["podView"]> & { pool: PoolView }> {
    return this.pools()
      .map((p) => ({ ...p.podView(o), pool: p.view() }))
      .filter((v) => v.allocation !== undefined);
  }

  /**
   * Ready when every pool holds its minimum (the warm target when no minimum is set) — of the pools
   * in `keys` when given (those of the configurations installed now).
   */
  ready(keys?: ReadonlySet<string>): boolean {
    return this.views().every((v) => v.ready || (keys !== undefined && !keys.has(v.key)));
  }

  /** Upkeep of every pool now and then. */
  start(intervalMs = 1000): void {
    this.#timer = setInterval(() => this.kick(), intervalMs);
    this.#timer.unref();
  }

  /** One round of upkeep of every pool, soon. */
  kick(): void {
    this.#refresh();
    for (const p of this.#pools.values()) p.kick();
  }

  /** One round of upkeep of every pool, now (tests). */
  async maintain(): Promise<void> {
    this.#refresh();
    await Promise.all(this.pools().map((p) => p.maintain()));
  }

  /**
   * Stop the upkeep and wait (at most `graceMs`) for the cloud work in flight: a port being made is
   * finished and recorded, so nothing is left that only the next writer's recovery would find.
   * The records stay as they are for the next writer. False: work was still in flight.
   */
  async stop(graceMs = 20_000): Promise<boolean> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs)));
    const done = Promise.allSettled(this.pools().map((p) => p.quiesce())).then(() => true);
    const clean = await Promise.race([done, late]);
    clearTimeout(timer);
    for (const l of this.#ledgers.values()) l.close();
    return clean;
  }
}
