// One pool of addresses for one tcnp-ipam configuration, for both modes: what a pod's ADD, DEL and
// GC do with the ledger's records, and the node agent's upkeep (cooled addresses back in the pool,
// surplus back to the cloud, pending work finished, the pool filled to its targets, the cloud's
// labels and view of it reconciled). The cloud work is its mode's (ops.ts).
//
// In the node agent (`resident`) the pool keeps a warm stock and a pod's ADD and DEL make no cloud
// call; for one request without the agent (a plugin process holding the node lock) it takes what
// stock there is and otherwise makes the pod's address on demand, as the plugins always did.
import { CniCode, CniError, tryAgainLater } from "../../cni/errors.js";
import type { CniResult } from "../../cni/result.js";
import type { Logger } from "../../log/logger.js";
import { isOpenStackError, isTransient } from "../../openstack/errors.js";
import {
  isDue,
  keyOf,
  ownerText,
  type IntentRecord,
  type Mode,
  type Owner,
  type PodRecord,
  type Rec,
} from "../ledger/records.js";
import type { ModeOps, PoolContext } from "./ops.js";
import { CloudBackoff, FILL_GATHER_MS, PoolWork } from "./work.js";

export interface PoolTargets {
  /** Free addresses kept ready for the next pods. */
  warm: number;
  /** Addresses (in use and free) the node holds at least. */
  minimum: number;
  /** Addresses (in use, free and cooling) the node holds at most for this configuration. */
  maximum: number;
}

export interface PoolView {
  key: string;
  mode: Mode;
  networks: string[];
  port?: string;
  free: string[];
  inUse: number;
  cooling: number;
  pendingReleases: number;
  targets: PoolTargets;
  /** The last cloud error while filling or releasing, while it lasts. */
  cloudError?: string;
  /** Until when cloud work backs off after that error (ms since the epoch). */
  backoffUntil?: number;
  ready: boolean;
}

/** What a fill did: how many addresses it made, or that the subnets have none left. */
interface FillOutcome {
  made: number;
  exhausted?: CniError;
}

export interface PoolEvents {
  cloudCall(kind: "fill" | "release" | "tags", ok: boolean): void;
}

/** How often the agent compares its pool with the cloud's view of it (after the first time, at start). */
export const RECOVER_EVERY_MS = 30_000;

/**
 * A pool at its maximum with records cooling after pods (a churn burst): waits for the first to come
 * due and back to the pool when that is before the deadline (undefined: try again), else returns
 * what to add to the "maximum" error.
 */
async function waitForCooled(
  records: Rec[],
  deadline: number,
  o: { now(): number; sleep(ms: number): Promise<void>; maintain(): Promise<void> },
): Promise<string | undefined> {
  const cooling = records.filter((r) => r.kind === "cooling");
  if (cooling.length === 0) return "";
  const due = Math.min(...cooling.map((r) => r.coolUntil));
  if (due > deadline)
    return `; ${cooling.length} of them cool down after pods (ipam.coolDownSeconds), the first until ${new Date(due).toISOString()}`;
  await o.sleep(Math.max(0, due - o.now()) + 5);
  await o.maintain();
  return undefined;
}

export class Pool {
  readonly key: string;
  readonly #c: PoolContext;
  readonly #ops: ModeOps;
  readonly #targets: PoolTargets;
  readonly #deadlineMs: number;
  readonly #events: PoolEvents | undefined;
  readonly #defer: (f: () => void) => void;
  readonly #work: PoolWork<FillOutcome>;
  readonly #backoff = new CloudBackoff();
  #waiting = 0;
  /** The subnets had no address left at the last fill (until a fill makes one). */
  #exhausted: CniError | undefined;
  /** When the next comparison with the cloud is due (0: not done yet since start). */
  #recoverAt = 0;
  #recovered = false;

  constructor(
    key: string,
    c: PoolContext,
    ops: ModeOps,
    o: { targets: PoolTargets; deadlineMs: number; events?: PoolEvents; defer?: (f: () => void) => void },
  ) {
    this.key = key;
    this.#c = c;
    this.#ops = ops;
    this.#targets = o.targets;
    this.#deadlineMs = o.deadlineMs;
    this.#events = o.events;
    this.#defer = o.defer ?? ((f) => setImmediate(f));
    this.#work = new PoolWork({ maintain: () => this.#upkeep(), fill: () => this.#fillBatch(), clock: c.s.deps.clock });
  }

  get mode(): Mode {
    return this.#ops.mode;
  }
  get #log(): Logger {
    return this.#c.s.deps.log;
  }
  #records(): Rec[] {
    return this.#c.ledger.all((r) => this.#c.mine(r));
  }
  #free(): ReturnType<PoolContext["ledger"]["free"]> {
    return this.#c.ledger.free((r) => this.#c.mine(r));
  }
  // At most this many addresses: the configured maximum, or fewer where the cloud showed it (eni:
  // the VM's free PCIe slots).
  #maximum(): number {
    return Math.min(this.#targets.maximum, this.#ops.learntMaximum ?? Number.POSITIVE_INFINITY);
  }
  // How many more addresses this node may hold for this configuration: every record that holds or
  // is making one counts, releases do not.
  #room(all: Rec[]): number {
    const n = all.filter((r) => r.kind !== "intent" || r.op === "add" || r.op === "grow").length;
    return Math.max(0, this.#maximum() - n);
  }

  view(): PoolView {
    const all = this.#records();
    const free = this.#free();
    const t = this.#targets;
    const v: PoolView = {
      key: this.key,
      mode: this.#ops.mode,
      networks: [...this.#c.s.cfg.networks],
      free: free.map((r) => r.ip),
      inUse: all.filter((r) => r.kind === "pod").length,
      cooling: all.filter((r) => r.kind === "cooling").length,
      // pending cloud work: intents, and (the agent) a first look at the cloud that has not happened yet
      pendingReleases:
        all.filter((r) => r.kind === "intent").length +
        (this.#c.resident && (!this.#recovered || this.#ops.unsure === true) ? 1 : 0),
      targets: { ...t, maximum: this.#maximum() },
      ready: free.length >= Math.min(t.minimum > 0 ? t.minimum : t.warm, this.#room(all) + free.length),
    };
    if (this.#ops.port !== undefined) v.port = this.#ops.port;
    if (this.#backoff.error !== undefined) v.cloudError = this.#backoff.error;
    if (this.#backoff.active(this.#c.now())) v.backoffUntil = this.#backoff.until;
    return v;
  }

  /** The pool's view of one pod: its record, and whether its address is also free or cooling here. */
  podView(o: Owner): { allocation?: Rec; inPool: boolean; cooling: boolean } {
    const a = this.#c.ledger.ofOwner(o);
    if (a === undefined || !this.#c.mine(a)) return { inPool: false, cooling: false };
    const same = (r: Rec): boolean => r !== a && r.ip === a.ip && r.portId === a.portId;
    return {
      allocation: a,
      inPool: this.#free().some(same),
      cooling: this.#records().some((r) => r.kind === "cooling" && same(r)),
    };
  }

  /** Whether the cloud still has a pod's address on its port. */
  async stillHeld(r: Rec): Promise<boolean> {
    if (r.portId === undefined || r.ip === undefined) return false;
    try {
      const p = await this.#c.s.clients.neutron.getPort(r.portId);
      return p.fixed_ips.some((f) => f.ip_address === r.ip);
    } catch (e) {
      if (isOpenStackError(e, "PortNotFound")) return false;
      throw e;
    }
  }

  // ---- a pod's ADD, DEL and GC

  /**
   * ADD: the address the attachment has (a repeated ADD), else one from the pool's stock. In the
   * agent an empty pool makes the pod wait for the next batch (one write serves every waiter), never
   * past the deadline, and not at all while the cloud is failing (a single blip is waited out);
   * without the agent the pod's address is made on demand.
   */
  async allocate(o: Owner, pod: ReadonlyMap<string, string>): Promise<PodRecord> {
    const L = this.#c.ledger;
    const deadline = this.#c.now() + this.#deadlineMs;
    const had = L.ofOwner(o);
    if (had?.kind === "pod") {
      if (this.#c.resident || (await this.stillHeld(had))) {
        this.#log.info("ADD repeated for an allocated container: returning the same address", { ip: had.ip });
        return had;
      }
      await this.#finish([L.releasePod(o, {}, this.#c.now())]);
    } else if (had !== undefined) {
      // An interrupted ADD or a pending release of this attachment: finished first (cloud work).
      await this.#finish([had as IntentRecord]);
    }
    this.#waiting++;
    try {
      for (;;) {
        const a = await this.#take(o);
        if (a !== undefined) {
          this.kick();
          if (!this.#c.resident) await this.#labelNow();
          return a;
        }
        if (!this.#c.resident) return await this.#addOnDemand(o, pod);
        const now = this.#c.now();
        // The subnets were full at the last fill, and its backoff runs: no new fill until it ends.
        if (this.#exhausted !== undefined && this.#backoff.active(now)) {
          await this.#waitOutExhaustion(this.#exhausted, deadline);
          continue;
        }
        const wait = this.#backoff.waitOut(now, deadline);
        if (wait === undefined)
          throw tryAgainLater(
            `The cloud is failing and this node's ${this.#ops.mode === "mix" ? "address" : "eni"} pool is empty: ${this.#backoff.error} (the agent retries with backoff; pods start again when the cloud answers)`,
          );
        if (wait > 0) {
          await this.#c.s.deps.clock.sleep(wait);
          continue;
        }
        if (now >= deadline)
          throw tryAgainLater(
            `No pool address within ${this.#deadlineMs / 1000} s: the node agent is still filling its ${this.#ops.mode} pool (${this.#backoff.error ?? (this.#ops.mode === "mix" ? "Neutron is slow" : "Nova attaches take time")})`,
          );
        const all = this.#records();
        if (this.#room(all) === 0) {
          const tail = await waitForCooled(all, deadline, {
            now: () => this.#c.now(),
            sleep: (ms) => this.#c.s.deps.clock.sleep(ms),
            maintain: () => this.maintain(),
          });
          if (tail === undefined) continue;
          throw new CniError(
            CniCode.AddressExhausted,
            `This node holds its maximum of ${this.#maximum()} ${this.#ops.mode === "mix" ? "addresses" : "eni ports"} for ipam.neutronConf.networks [${this.#c.s.cfg.networks.join(", ")}] (ipam.pool.maximum)${tail}`,
          );
        }
        const filled = await this.#work.fill();
        if (filled.exhausted !== undefined && !(await this.#waitOutExhaustion(filled.exhausted, deadline))) continue;
        // A fill that made nothing and failed nothing (another task took what it made): not a busy loop.
        if (filled.made === 0) await this.#c.s.deps.clock.sleep(FILL_GATHER_MS);
      }
    } finally {
      this.#waiting--;
    }
  }

  // The oldest free address that can serve now made the pod's. After one look at the node, the
  // choice and the take are one synchronous step: no other work of this process runs between them.
  async #take(o: Owner): Promise<PodRecord | undefined> {
    const check = await this.#ops.takeable();
    const L = this.#c.ledger;
    for (const p of this.#free()) {
      const got = check(p);
      if (typeof got === "string") {
        L.lost(p.ip, got, this.#c.now());
        continue;
      }
      return L.take(o, p.ip, got, this.#c.now());
    }
    return undefined;
  }

  // The subnets are full: what cools down after pods is all that can serve, if it is due in time
  // (false: it was; try again). Otherwise the pod fails with code 100, saying so.
  async #waitOutExhaustion(e: CniError, deadline: number): Promise<false> {
    const tail = await waitForCooled(this.#records(), deadline, {
      now: () => this.#c.now(),
      sleep: (ms) => this.#c.s.deps.clock.sleep(ms),
      maintain: () => this.maintain(),
    });
    if (tail === undefined) return false;
    throw new CniError(CniCode.AddressExhausted, `${e.message}${tail}`, { cause: e });
  }

  // Without the agent nothing relabels later: the cloud's marks follow the take at once (an eni port
  // taken from the pool names its pod, found by it even if the records are lost; a mix address is
  // no longer tagged as the pool's). The pod has its address either way.
  async #labelNow(): Promise<void> {
    try {
      await this.#ops.relabel();
    } catch (e) {
      this.#log.warn("cannot relabel what the pod took from the pool; the agent does it later", { error: e });
    }
  }

  async #addOnDemand(o: Owner, pod: ReadonlyMap<string, string>): Promise<PodRecord> {
    try {
      return await this.#ops.addFor(o, pod);
    } catch (e) {
      // Addresses whose cool-down is over may be all that fills the subnets: give them back, try again.
      if (!(e instanceof CniError && e.code === CniCode.AddressExhausted) || (await this.#expireDue()) === 0) throw e;
      return this.#ops.addFor(o, pod);
    }
  }

  /**
   * DEL: a pod's address cools down (the agent: no cloud call) or, with no cool-down and no agent,
   * goes back to the cloud; an interrupted ADD or pending release is finished; with no record, what
   * prevResult or the cloud's marks say the attachment held is released.
   */
  async release(o: Owner, prev: CniResult | undefined): Promise<void> {
    const L = this.#c.ledger;
    const r = L.ofOwner(o);
    if (r === undefined) return this.#ops.releaseUnknown(o, prev);
    if (r.kind === "intent") return this.#finish([r]);
    if (r.kind !== "pod") return;
    if (L.heldByAnother(r)) {
      // An earlier release of it committed with its answer lost, and the address came back to this
      // node for another record: it is theirs now.
      L.dropShared(o);
      return;
    }
    const now = this.#c.now();
    if (this.#c.resident || this.#c.s.cfg.coolDownMs > 0) {
      await this.#ops.coolDown(o, now + this.#c.s.cfg.coolDownMs);
      this.#log.info("address cooling down before it serves again or goes back to the cloud", {
        ip: r.ip,
        seconds: this.#c.s.cfg.coolDownMs / 1000,
      });
      this.kick();
      return;
    }
    await this.#finish([L.releasePod(o, {}, now)]);
  }

  /** GC: the attachments of this configuration that are not valid (and older than `minAgeMs`) released. */
  async gc(valid: ReadonlySet<string>, minAgeMs: number): Promise<void> {
    const errors: string[] = [];
    const now = this.#c.now();
    for (const r of this.#records()) {
      try {
        if (r.kind === "pod") {
          // Decided here: an ADD that landed after the valid set was read is young.
          if (valid.has(ownerText(r.owner)) || now - r.createdAt < minAgeMs) continue;
          await this.release(r.owner, undefined);
        } else if (r.kind === "intent" && !this.#c.ledger.claimed(keyOf(r))) await this.#finish([r]);
      } catch (e) {
        errors.push(`${r.kind === "pod" ? ownerText(r.owner) : keyOf(r)}: ${(e as Error).message}`);
      }
    }
    if (!this.#c.resident) await this.#expireDue().catch((e: unknown) => errors.push((e as Error).message));
    errors.push(...(await this.#ops.collectOrphans(valid)));
    if (errors.length > 0)
      throw tryAgainLater(`GC could not release ${errors.length} allocation(s): ${errors.join("; ")}`);
  }

  /**
   * Without the agent, after a pod's own DEL: due cooling addresses back to the cloud, and at most
   * `max` pending intents finished (left by crashes or failures). Failures stay pending.
   */
  async settle(max: number): Promise<void> {
    if (this.#c.resident) return;
    try {
      await this.#expireDue();
      const left = this.#c.ledger.orphans((r) => this.#c.mine(r)).slice(0, max);
      for (const i of left) {
        await this.#finish([i]);
        this.#log.info("completed pending work", { intent: keyOf(i), op: i.op, ip: i.ip });
      }
    } catch (e) {
      this.#log.warn("pending work is still pending", { error: e });
    }
  }

  // Cooling addresses that are due go back to the cloud (without the agent). How many.
  async #expireDue(): Promise<number> {
    const now = this.#c.now();
    const L = this.#c.ledger;
    const due = this.#records().filter((r) => isDue(r, now));
    await this.#finish(due.map((r) => L.expire(r.ip!, now)));
    return due.length;
  }

  // Finish intents (undo adds, fills and growths; give releases back), each claimed while it runs.
  // An intent another task of this process is working on is not this one's to finish.
  async #finish(list: IntentRecord[]): Promise<void> {
    const L = this.#c.ledger;
    const mine = list.filter((i) => L.claim(keyOf(i)));
    if (mine.length < list.length)
      throw tryAgainLater(`${list.length - mine.length} record(s) of this request are being finished by other work`);
    const releases = mine.filter((i) => i.op === "release");
    try {
      for (const i of mine) if (i.op !== "release") await this.#ops.undo(i);
      if (releases.length > 0) {
        await this.#ops.giveBack(releases).then(
          () => this.#events?.cloudCall("release", true),
          (e: unknown) => {
            this.#events?.cloudCall("release", false);
            throw e;
          },
        );
      }
    } catch (e) {
      const one = mine.length === 1 ? mine[0]! : undefined;
      if (!isTransient(e, { conflict: true }) && !(e instanceof CniError && e.code === CniCode.TryAgainLater)) throw e;
      throw tryAgainLater(
        `Cannot release ${one?.ip ?? "the address"}${one?.owner === undefined ? "" : ` of ${ownerText(one.owner)}`} now (recorded as pending; a later DEL or GC completes it): ${(e as Error).message}`,
        e,
      );
    } finally {
      for (const i of mine) L.unclaim(keyOf(i));
    }
  }

  // ---- the agent's upkeep

  /** Run the upkeep soon (after a take or a release), without waiting for it. */
  kick(): void {
    if (!this.#c.resident) return;
    // After the current task: the pod whose take kicked it finishes its kernel work first.
    this.#defer(() => void this.maintain());
  }

  /** One round of upkeep (see #upkeep); one at a time. */
  maintain(): Promise<void> {
    return this.#work.maintain();
  }

  /** For a clean stop: no new upkeep, and the cloud work in flight ended. */
  quiesce(): Promise<void> {
    return this.#work.quiesce();
  }

  async #upkeep(): Promise<void> {
    const L = this.#c.ledger;
    const now = this.#c.now();
    // Record changes, no cloud call: due cooling addresses serve again (or, when they cannot — a port
    // detached without the agent, an address held twice — go back to the cloud); surplus is marked.
    for (const r of this.#records())
      if (isDue(r, now)) {
        if (r.detached !== true && !L.heldByAnother(r)) L.cooled(r.ip, now);
        else L.expire(r.ip, now);
      }
    const inUse = this.#records().filter((r) => r.kind === "pod").length;
    for (const p of this.#free().slice(Math.max(this.#targets.warm, this.#targets.minimum - inUse)))
      L.surplus(p.ip, now);
    if (this.#backoff.active(now)) return;
    try {
      // Pending work: interrupted adds, batches and growths, releases (surplus in one write).
      await this.#finish(L.orphans((r) => this.#c.mine(r)));
      // The cloud's view (at start until it answers, then now and then): not while a fill is making
      // what no record names yet.
      if (!this.#work.filling && (now >= this.#recoverAt || this.#ops.unsure === true)) {
        const n = await this.#ops.recover();
        if (n > 0)
          this.#log.info("pool: adopted what the cloud marks as this node's pool and no record knew", { adopted: n });
        this.#recovered = true;
        this.#recoverAt = this.#c.now() + RECOVER_EVERY_MS;
      }
      const all = this.#records();
      const free = this.#free().length;
      const held = all.filter((r) => r.kind === "pod").length;
      if ((free < this.#targets.warm || held + free < this.#targets.minimum) && this.#room(all) > 0) {
        await this.#work.fill();
        if (this.#backoff.active(this.#c.now())) return;
      }
      // Labels wait while pods wait: a burst first.
      if (this.#waiting === 0)
        await this.#ops.relabel().then(
          () => this.#events?.cloudCall("tags", true),
          (e: unknown) => {
            this.#events?.cloudCall("tags", false);
            throw e;
          },
        );
      this.#backoff.ok();
    } catch (e) {
      this.#failed(e);
    }
  }

  async #fillBatch(): Promise<FillOutcome> {
    const t0 = this.#c.now();
    try {
      const all = this.#records();
      const free = this.#free().length;
      const inUse = all.filter((r) => r.kind === "pod").length;
      const t = this.#targets;
      let want = Math.max(t.warm + this.#waiting - free, t.minimum - inUse - free, 0);
      // Pods waiting means a burst is under way: more are coming than have arrived, so a batched
      // mode asks for a warm target's worth beyond them in the same write.
      if (this.#waiting > 0) want = Math.max(want, this.#waiting + (this.#ops.batched ? t.warm : 0));
      const n = Math.min(want, this.#room(all), await this.#ops.cap(free));
      if (n <= 0) return { made: 0 };
      // A stopping agent finishes what it has in hand, and makes more only for pods still waiting.
      const made = await this.#ops.fill(n, () => !this.#work.stopping || this.#waiting > 0);
      this.#log.info("pool filled", {
        mode: this.#ops.mode,
        added: made,
        asked: n,
        waiting: this.#waiting,
        ms: this.#c.now() - t0,
      });
      this.#events?.cloudCall("fill", true);
      this.#backoff.ok();
      this.#exhausted = undefined;
      return { made };
    } catch (e) {
      this.#events?.cloudCall("fill", false);
      this.#failed(e);
      if (!(e instanceof CniError && e.code === CniCode.AddressExhausted)) return { made: 0 };
      this.#exhausted = e;
      return { made: 0, exhausted: e };
    }
  }

  #failed(e: unknown): void {
    const ms = this.#backoff.failed(e, this.#c.now());
    this.#log.warn("pool cloud work failed; backing off", { mode: this.#ops.mode, ms, error: this.#backoff.error });
  }
}
