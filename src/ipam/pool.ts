// The node agent's warm pool of mix addresses for one configuration: addresses pre-added to the
// VM's port in one fixed_ips write per batch, so a pod's ADD takes one without a cloud call.
//
// The allocation store is the truth on this node and Neutron is the truth for what the port holds:
// pool addresses are records of their own (state "pool", keyed by the address, written durably)
// and carry a `tcnp-pool=<ip>` tag on the VM's port. Every change of a record happens under the
// node lock the plugins take, so plugin processes (no agent) and the agent can work side by side.
// A batch is an intent record ("adding", with the port's addresses before) like a pod's ADD: a
// crash in the middle is undone by the same recovery. Released addresses cool down (their own
// records, see store.ts), then come back to the pool or, beyond the targets, go back to Neutron in
// one write.
import { CniCode, CniError, tryAgainLater } from "../cni/errors.js";
import type { Clock } from "../base/clock.js";
import { parseCidr } from "../net/ip.js";
import { isOpenStackError } from "../openstack/errors.js";
import type { FixedIp, Port, Subnet } from "../openstack/types.js";
import type { IpamConfig } from "./config.js";
import { addMany, candidateSubnets, mixRelease, removeAddresses, stillCooling, type MixDeps } from "./mix.js";
import { processAlive } from "../state/files.js";
import { MemoryLock } from "../state/lock.js";
import type { IpamSession } from "./session.js";
import { poolKey, subnetFields, type Allocation } from "./store.js";
import { MIX_TAG, nodeIpTag, poolTag, POOL_TAG_PREFIX } from "./tags.js";
import { findVmPorts, type VmPort } from "./vm-port.js";

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
  mode: "mix" | "eni";
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

export interface PoolEvents {
  cloudCall(kind: "fill" | "release" | "tags", ok: boolean): void;
}

/** Cloud work of a pool backs off after a failure (1 s doubling to 30 s); the last error says why. */
export class CloudBackoff {
  error: string | undefined;
  until = 0;
  #ms = 0;
  ok(): void {
    this.error = undefined;
    this.#ms = 0;
    this.until = 0;
  }
  /** Record a failure at `now`; returns the wait before the next try. */
  failed(e: unknown, now: number): number {
    this.#ms = Math.min(Math.max(this.#ms * 2, 1000), 30_000);
    this.until = now + this.#ms;
    this.error = e instanceof Error ? e.message : String(e);
    return this.#ms;
  }
  /** Backing off now. */
  active(now: number): boolean {
    return this.until > now;
  }
  /** Backing off after an error. */
  failing(now: number): boolean {
    return this.active(now) && this.error !== undefined;
  }
  /**
   * What an ADD that finds the pool empty does while the cloud is failing: after a single failure
   * since the cloud last answered (a blip: one 500, one reset) it waits the short backoff out and
   * tries again, if that fits in its deadline; after repeated failures (the cloud is down) it fails
   * at once. Returns how long to wait, or undefined to fail now.
   */
  waitOut(now: number, deadline: number): number | undefined {
    if (!this.failing(now)) return 0;
    return this.#ms <= 1000 && this.until < deadline ? this.until - now : undefined;
  }
}

/** A pool's view from its records (mix and eni alike). */
export function poolView(o: {
  key: string;
  mode: "mix" | "eni";
  networks: readonly string[];
  records: readonly Allocation[];
  free: readonly Allocation[];
  targets: PoolTargets;
  room: number;
  backoff: CloudBackoff;
  now: number;
  /** Pending cloud work the records do not show (an eni pool's search for lost ports). */
  morePending?: number;
}): PoolView {
  const { records: all, free, targets: t } = o;
  const v: PoolView = {
    key: o.key,
    mode: o.mode,
    networks: [...o.networks],
    free: free.map((a) => a.ip!),
    inUse: all.filter((a) => a.state === "active").length,
    cooling: all.filter((a) => a.state === "cooling").length,
    pendingReleases: all.filter((a) => a.state === "releasing" || a.state === "adding").length + (o.morePending ?? 0),
    targets: { ...t },
    ready: free.length >= Math.min(t.minimum > 0 ? t.minimum : t.warm, o.room + free.length),
  };
  if (o.backoff.error !== undefined) v.cloudError = o.backoff.error;
  if (o.backoff.active(o.now)) v.backoffUntil = o.backoff.until;
  return v;
}

const FILL_INTENT = { containerId: "pool-fill", ifname: "pool" };
/**
 * A pool at its maximum with records cooling after pods (a churn burst): waits for the first to come
 * due and back to the pool when that is before the deadline (undefined: try again), else returns
 * what to add to the "maximum" error.
 */
export async function waitForCooled(
  records: Allocation[],
  deadline: number,
  clock: Clock,
  maintain: () => Promise<void>,
): Promise<string | undefined> {
  const cooling = records.filter((r) => r.state === "cooling" && r.coolUntil !== undefined);
  if (cooling.length === 0) return "";
  const due = Math.min(...cooling.map((r) => r.coolUntil!));
  if (due > deadline)
    return `; ${cooling.length} of them cool down after pods (ipam.coolDownSeconds), the first until ${new Date(due).toISOString()}`;
  await clock.sleep(Math.max(0, due - clock.now()) + 5);
  await maintain();
  return undefined;
}

/** How long a fill waits for more pods to join its batch. */
export const FILL_GATHER_MS = 100;

/**
 * The cloud work of a pool, one at a time of each kind: a round of upkeep, and a fill shared by
 * everyone who asks while it runs (after a short gathering window: in a burst, the pods right
 * behind the first join the batch; pods that waited through the previous fill have gathered
 * already, so a fill asked for right after one ends starts at once). Once stopping, no new upkeep
 * starts; quiesce() resolves when the work in flight has ended, so a stopped agent leaves no port
 * or address no record names.
 */
export class PoolWork {
  #maintaining: Promise<void> | undefined;
  #fill: Promise<void> | undefined;
  #stopping = false;
  #lastFillEnd = -Infinity;
  readonly #maintain: () => Promise<void>;
  readonly #fillBatch: () => Promise<void>;
  readonly #clock: Clock;

  constructor(o: { maintain: () => Promise<void>; fill: () => Promise<void>; clock: Clock }) {
    this.#maintain = o.maintain;
    this.#fillBatch = o.fill;
    this.#clock = o.clock;
  }

  get stopping(): boolean {
    return this.#stopping;
  }
  get filling(): boolean {
    return this.#fill !== undefined;
  }

  maintain(): Promise<void> {
    if (this.#stopping) return Promise.resolve();
    this.#maintaining ??= this.#maintain().finally(() => (this.#maintaining = undefined));
    return this.#maintaining;
  }

  fill(): Promise<void> {
    if (this.#fill === undefined) {
      const gathered = this.#clock.now() - this.#lastFillEnd < FILL_GATHER_MS;
      this.#fill = (gathered ? Promise.resolve() : this.#clock.sleep(FILL_GATHER_MS))
        .then(() => this.#fillBatch())
        .finally(() => {
          this.#fill = undefined;
          this.#lastFillEnd = this.#clock.now();
        });
    }
    return this.#fill;
  }

  async quiesce(): Promise<void> {
    this.#stopping = true;
    await Promise.allSettled([this.#maintaining, this.#fill]);
  }
}

/** A configuration's identity for pooling: same cloud, project, networks and state → same pool. */
export const poolKeyOf = (cfg: IpamConfig): string =>
  JSON.stringify([cfg.stateDir, cfg.mode, cfg.networks, cfg.subnets, cfg.credentials.auth.authUrl]);

export class MixPool {
  readonly key: string;
  readonly #s: IpamSession;
  readonly #targets: PoolTargets;
  readonly #events: PoolEvents | undefined;
  readonly #work: PoolWork;
  #vm: VmPort | undefined;
  #subnet: Subnet | undefined;
  #waiting = 0;
  readonly #backoff = new CloudBackoff();
  #tagsDirty = true;
  /** The VM's port as the last batch read it back; forgotten when this pool writes it otherwise. */
  #lastPort: Port | undefined;
  /**
   * The agent's own lock over record changes that need no cloud call (a pod taking a pool address,
   * a cooled address coming back, surplus being marked): taken without waiting for the node lock,
   * which cloud writes hold for as long as Neutron takes. Every such change keeps the address known
   * to the plugins' path at every moment (the new record is written before the old is removed).
   */
  readonly #recs = new MemoryLock();
  readonly #deadlineMs: number;

  constructor(s: IpamSession, opts: { targets: PoolTargets; deadlineMs: number; events?: PoolEvents }) {
    this.key = poolKeyOf(s.cfg);
    this.#s = s;
    this.#targets = opts.targets;
    this.#deadlineMs = opts.deadlineMs;
    this.#events = opts.events;
    this.#work = new PoolWork({
      maintain: () => this.#maintain(),
      fill: () => this.#fillBatch(),
      clock: s.deps.clock,
    });
  }

  get #d(): MixDeps {
    return this.#s.mixDeps();
  }
  #now(): number {
    return this.#s.deps.clock.now();
  }
  #mine(a: Allocation): boolean {
    return a.mode === "mix" && this.#s.cfg.networks.includes(a.networkId);
  }
  #records(): Allocation[] {
    return this.#s.store.list().filter((a) => this.#mine(a));
  }
  // Addresses a pod holds or that cool down after one: a pool record for one of those is stale
  // (a crash between a take's two writes) and is not free.
  #held(recs: Allocation[] = this.#records()): Set<string | undefined> {
    return new Set(recs.filter((a) => a.state === "active" || a.state === "cooling").map((a) => a.ip));
  }
  // One listing of the store serves both questions (each listing reads every record file).
  #free(recs: Allocation[] = this.#records()): Allocation[] {
    const held = this.#held(recs);
    return recs.filter((a) => a.state === "pool" && !held.has(a.ip)).sort((a, b) => a.createdAt - b.createdAt);
  }

  view(): PoolView {
    const all = this.#records();
    const v = poolView({
      key: this.key,
      mode: "mix",
      networks: this.#s.cfg.networks,
      records: all,
      free: this.#free(all),
      targets: this.#targets,
      room: this.#room(all),
      backoff: this.#backoff,
      now: this.#now(),
    });
    if (this.#vm !== undefined) v.port = this.#vm.portId;
    return v;
  }

  /** The pool's view of one pod: its allocation, and whether its address is also free or cooling here. */
  podView(containerId: string, ifname: string): { allocation?: Allocation; inPool: boolean; cooling: boolean } {
    const a = this.#s.store.get(containerId, ifname);
    if (a === undefined) return { inPool: false, cooling: false };
    return {
      allocation: a,
      inPool: this.#free().some((p) => p.ip === a.ip),
      cooling: this.#records().some((r) => r.state === "cooling" && r.ip === a.ip),
    };
  }

  // How many more addresses this node may hold for this configuration.
  #room(all: Allocation[]): number {
    return Math.max(0, this.#targets.maximum - all.filter((a) => a.state !== "releasing").length);
  }

  /**
   * The allocation of a pod: the one it already has (a repeated ADD), else one from the pool. With
   * the pool empty the caller waits for the next batch (one write serves every waiter), but never
   * past the deadline, and not at all while the cloud is failing (a single blip is waited out).
   */
  async allocate(who: { containerId: string; ifname: string }): Promise<Allocation> {
    const deadline = this.#now() + this.#deadlineMs;
    // A record left by an interrupted ADD of the plugin path: finish it first (cloud work).
    const left = this.#s.store.get(who.containerId, who.ifname);
    if (left !== undefined && left.state !== "active") {
      this.#lastPort = undefined;
      await this.#s.locked(async () => this.#s.release(left));
    }
    this.#waiting++;
    try {
      for (;;) {
        const a = await this.#recs.withLock("records", async () => this.#take(who));
        if (a !== undefined) {
          this.kick();
          return a;
        }
        const wait = this.#backoff.waitOut(this.#now(), deadline);
        if (wait === undefined) {
          throw tryAgainLater(
            `The cloud is failing and this node's address pool is empty: ${this.#backoff.error} (the agent retries with backoff; pods start again when Neutron answers)`,
          );
        }
        if (wait > 0) {
          await this.#s.deps.clock.sleep(wait);
          continue;
        }
        if (this.#now() >= deadline) {
          throw tryAgainLater(
            `No pool address within ${this.#deadlineMs / 1000} s: the node agent is still filling its pool (${this.#backoff.error ?? "Neutron is slow"})`,
          );
        }
        const all = this.#records();
        if (this.#room(all) === 0) {
          const tail = await waitForCooled(all, deadline, this.#s.deps.clock, () => this.maintain());
          if (tail === undefined) continue;
          throw new CniError(
            CniCode.AddressExhausted,
            `This node holds its maximum of ${this.#targets.maximum} addresses for ipam.neutronConf.networks [${this.#s.cfg.networks.join(", ")}] (ipam.pool.maximum)${tail}`,
          );
        }
        await this.#work.fill();
      }
    } finally {
      this.#waiting--;
    }
  }

  /**
   * DEL: the pod's active address becomes a cooling record (one write, no cloud call), under the
   * records lock. Anything else (no record, an interrupted ADD or release) is the node-locked path's.
   */
  async takeBack(who: { containerId: string; ifname: string }): Promise<boolean> {
    return this.#recs.withLock("records", async () => {
      const a = this.#s.store.get(who.containerId, who.ifname);
      if (a?.state !== "active" || a.ip === undefined || a.portId === undefined) return false;
      // A cooling record, or (another pod holds the address too) just the record gone: no cloud call.
      await mixRelease(this.#d, a);
      return this.#s.store.get(who.containerId, who.ifname) === undefined;
    });
  }

  // Under the lock: the pod's own record, or the oldest free pool address made the pod's.
  async #take(who: { containerId: string; ifname: string }): Promise<Allocation | undefined> {
    const store = this.#s.store;
    const existing = store.get(who.containerId, who.ifname);
    if (existing?.state === "active") return existing;
    const p = this.#free()[0];
    if (p === undefined) return undefined;
    const now = this.#now();
    const a: Allocation = {
      ...p,
      containerId: who.containerId,
      ifname: who.ifname,
      state: "active",
      createdAt: now,
      updatedAt: now,
    };
    delete a.coolUntil;
    delete a.heldBy;
    store.put(a);
    store.delete(p.containerId, p.ifname);
    this.#tagsDirty = true;
    return a;
  }

  async #fillBatch(): Promise<void> {
    const t0 = this.#now();
    try {
      await this.#s.locked(async () => {
        const all = this.#records();
        const free = this.#free().length;
        const inUse = all.filter((a) => a.state === "active").length;
        let want = Math.max(this.#targets.warm + this.#waiting - free, this.#targets.minimum - inUse - free, 0);
        // Pods waiting means a burst is under way: more are coming than have arrived, so ask for
        // a warm target's worth beyond them in the same write rather than one write per few pods.
        if (this.#waiting > 0) want = Math.max(want, this.#waiting + this.#targets.warm);
        const n = Math.min(want, this.#room(all), await this.#subnetCap());
        if (n <= 0) return;
        // An earlier batch interrupted (a killed agent): undo what it left before a new intent
        // takes its place — its list of the port's addresses before is what finds them.
        const left = this.#s.store.get(FILL_INTENT.containerId, FILL_INTENT.ifname);
        if (left !== undefined) {
          this.#lastPort = undefined;
          await mixRelease(this.#d, left);
        }
        const { vm, subnet } = await this.#where();
        const base = {
          ...FILL_INTENT,
          mode: "mix" as const,
          serverId: vm.serverId,
          networkId: vm.networkId,
          portId: vm.portId,
          subnetId: subnet.id,
          mac: vm.mac,
          hostIfname: vm.hostIf,
        };
        // The port as the previous batch read it back: consecutive batches of a burst write without
        // reading it first (a stale one costs a refused write and a read).
        const ips = await addMany(this.#d, vm, subnet, base, n, {
          ...(this.#lastPort === undefined ? {} : { known: this.#lastPort }),
          seen: (p) => (this.#lastPort = p),
        });
        const now = this.#now();
        for (const ip of ips) {
          const rec: Allocation = {
            ...base,
            ...poolKey(ip),
            state: "pool",
            ip,
            ...subnetFields(subnet),
            createdAt: now,
            updatedAt: now,
          };
          this.#s.store.put(rec);
        }
        this.#s.store.delete(FILL_INTENT.containerId, FILL_INTENT.ifname);
        this.#tagsDirty = true;
        if (ips.length === 0) this.#subnet = undefined; // exhausted: look at the next subnet next time
        this.#s.deps.log.info("pool filled", {
          added: ips.length,
          asked: n,
          waiting: this.#waiting,
          port: vm.portId,
          ms: this.#now() - t0,
        });
      });
      this.#events?.cloudCall("fill", true);
      this.#backoff.ok();
    } catch (e) {
      this.#events?.cloudCall("fill", false);
      this.#failed(e);
    }
  }

  // At most a quarter of a subnet's addresses are held free by one node's pool.
  async #subnetCap(): Promise<number> {
    const { subnet } = await this.#where();
    const size = 2 ** (32 - parseCidr(subnet.cidr).prefix);
    return Math.max(1, Math.floor(size / 4)) - this.#free().length;
  }

  async #where(): Promise<{ vm: VmPort; subnet: Subnet }> {
    if (this.#vm === undefined) {
      const s = this.#s;
      const serverId = await s.serverId();
      this.#vm = (await findVmPorts(s.clients.neutron, await s.deps.kernel(), serverId, s.cfg.networks, s.cache))[0]!;
    }
    if (this.#subnet === undefined) {
      const subnets = await candidateSubnets(this.#s.clients.neutron, this.#s.cfg, this.#vm.networkId, this.#s.cache);
      if (subnets.length === 0)
        throw new CniError(CniCode.AddressExhausted, `Network ${this.#vm.networkId} has no IPv4 subnet to pool from`);
      this.#subnet = subnets[0]!;
    }
    return { vm: this.#vm, subnet: this.#subnet };
  }

  #failed(e: unknown): void {
    const ms = this.#backoff.failed(e, this.#now());
    this.#s.deps.log.warn("pool cloud work failed; backing off", { ms, error: this.#backoff.error });
  }

  /** Run the maintenance soon (after a take or a release), without waiting for it. */
  kick(): void {
    // After the current task: the pod whose take kicked it finishes its kernel work first (the
    // upkeep's store reads would otherwise run between that pod's netlink requests).
    setImmediate(() => void this.maintain());
  }

  /**
   * One round of upkeep: pending intents finished, due cooling addresses back to the pool (or to
   * Neutron beyond the targets), surplus released in one write, the pool filled to its targets,
   * the port's pool tags brought up to date. Cloud work backs off after a failure.
   */
  maintain(): Promise<void> {
    return this.#work.maintain();
  }

  /** For a clean stop (see PoolWork). */
  quiesce(): Promise<void> {
    return this.#work.quiesce();
  }

  async #maintain(): Promise<void> {
    const now = this.#now();
    // Cooling addresses that are due come back to the pool: a record change, no cloud call, but
    // under the node lock too: a plugin process (no agent answered it) may be giving the same due
    // address back to Neutron, and must not find it turned into a pool address halfway.
    await this.#s.locked(async () =>
      this.#recs.withLock("records", async () => {
        const held = this.#held();
        const active = new Set(
          this.#records()
            .filter((a) => a.state === "active")
            .map((a) => a.ip),
        );
        for (const a of this.#records()) {
          if (a.state === "pool" && held.has(a.ip)) {
            // taken by a pod, and a crash came before the pool record was removed
            this.#s.store.delete(a.containerId, a.ifname);
          } else if (a.state === "cooling" && !stillCooling(a, now) && a.ip !== undefined && !active.has(a.ip)) {
            const p: Allocation = { ...a, ...poolKey(a.ip), state: "pool", updatedAt: now };
            delete p.coolUntil;
            delete p.heldBy;
            this.#s.store.put(p);
            this.#s.store.delete(a.containerId, a.ifname);
            this.#tagsDirty = true;
          }
        }
      }),
    );
    if (this.#backoff.active(now)) return;
    try {
      await this.#finishIntents();
      await this.#releaseSurplus();
      const free = this.#free().length;
      const all = this.#records();
      const inUse = all.filter((a) => a.state === "active").length;
      if ((free < this.#targets.warm || inUse + free < this.#targets.minimum) && this.#room(all) > 0) {
        await this.#work.fill();
        if (this.#backoff.active(this.#now())) return;
      }
      // Tags wait while pods wait: a burst first.
      if (this.#tagsDirty && this.#waiting === 0) await this.#syncTags();
      this.#backoff.ok();
    } catch (e) {
      this.#failed(e);
    }
  }

  // Interrupted batches and releases (this agent's or the plugins'), under the lock.
  async #finishIntents(): Promise<void> {
    await this.#s.locked(async () => {
      for (const a of this.#records()) {
        if (a.state !== "releasing" && a.state !== "adding") continue;
        if (a.state === "adding" && a.containerId !== FILL_INTENT.containerId) {
          // a plugin process's ADD: only once its writer is gone
          if (a.pid !== undefined && a.pid !== process.pid && processAlive(a.pid)) continue;
          if (this.#s.deps.busy?.(a.containerId, a.ifname) === true) continue;
          if (this.#now() - a.updatedAt < 1000) continue;
        }
        this.#lastPort = undefined;
        await mixRelease(this.#d, a).catch((e: unknown) => {
          this.#events?.cloudCall("release", false);
          throw e;
        });
        this.#events?.cloudCall("release", true);
      }
    });
  }

  // Free addresses beyond the warm target (and the minimum) go back to Neutron in one write.
  async #releaseSurplus(): Promise<void> {
    if (this.#vm === undefined) return;
    // Chosen and marked under the records lock, so no pod takes one of them meanwhile; intents
    // first: a crash in the write leaves releasing records, finished next round.
    const surplus = await this.#recs.withLock("records", async () => {
      const free = this.#free();
      const inUse = this.#records().filter((a) => a.state === "active").length;
      const keep = Math.max(this.#targets.warm, this.#targets.minimum - inUse);
      const out = free.slice(keep);
      const now = this.#now();
      for (const a of out) this.#s.store.put({ ...a, state: "releasing", updatedAt: now });
      return out;
    });
    if (surplus.length === 0 || this.#vm === undefined) return;
    await this.#s.locked(async () => {
      if (this.#vm === undefined) return;
      const gone = new Set(surplus.map((a) => a.ip));
      try {
        this.#lastPort = undefined;
        await removeAddresses(this.#d, this.#vm.portId, (f: FixedIp) => gone.has(f.ip_address));
        this.#events?.cloudCall("release", true);
      } catch (e) {
        this.#events?.cloudCall("release", false);
        throw e;
      }
      for (const a of surplus) this.#s.store.delete(a.containerId, a.ifname);
      this.#tagsDirty = true;
      this.#s.deps.log.info("pool surplus released", { released: surplus.length, port: this.#vm.portId });
    });
  }

  // The port's tcnp-pool=<ip> tags say which of its addresses are the pool's (for gc, doctor and
  // the route controller); one write replaces them all.
  async #syncTags(): Promise<void> {
    if (this.#vm === undefined) await this.#where();
    const vm = this.#vm!;
    // Off the lock: tags are a label for others, the records are the truth, and pods waiting
    // on the lock must not wait for two more cloud calls.
    this.#tagsDirty = false;
    const free = this.#free().map((a) => poolTag(a.ip!));
    const port = await this.#s.clients.neutron.getPort(vm.portId);
    const others = port.tags.filter((t) => !t.startsWith(POOL_TAG_PREFIX));
    const want = [...new Set([...others, MIX_TAG, nodeIpTag(vm.nodeIp), ...free])];
    if (want.length === port.tags.length && want.every((t) => port.tags.includes(t))) return;
    try {
      this.#lastPort = undefined;
      await this.#s.clients.neutron.setTags("ports", vm.portId, want);
      this.#events?.cloudCall("tags", true);
    } catch (e) {
      this.#tagsDirty = true;
      this.#events?.cloudCall("tags", false);
      if (!isOpenStackError(e, "PortNotFound")) throw e;
    }
  }

  /**
   * At start: adopt what the port's pool tags name and no record knows (records lost with the
   * disk), so nothing the pool held is leaked; Neutron is the truth for what the port holds.
   */
  async recover(): Promise<number> {
    const { vm, subnet } = await this.#where();
    return this.#s.locked(async () => {
      const port = await this.#s.clients.neutron.getPort(vm.portId);
      const known = new Set(this.#s.store.list().map((a) => a.ip));
      const onPort = new Map(port.fixed_ips.map((f) => [f.ip_address, f]));
      let adopted = 0;
      const now = this.#now();
      for (const t of port.tags.filter((x) => x.startsWith(POOL_TAG_PREFIX))) {
        const ip = t.slice(POOL_TAG_PREFIX.length);
        const f = onPort.get(ip);
        if (f === undefined || known.has(ip) || ip === vm.nodeIp) continue;
        this.#s.store.put({
          ...poolKey(ip),
          mode: "mix",
          state: "pool",
          serverId: vm.serverId,
          networkId: vm.networkId,
          portId: vm.portId,
          subnetId: f.subnet_id,
          mac: vm.mac,
          hostIfname: vm.hostIf,
          ip,
          ...subnetFields(subnet),
          createdAt: now,
          updatedAt: now,
        });
        adopted++;
      }
      // Pool records whose address is no longer on the port (someone removed it): forget them.
      for (const a of this.#records())
        if (a.state === "pool" && a.ip !== undefined && !onPort.has(a.ip))
          this.#s.store.delete(a.containerId, a.ifname);
      this.#tagsDirty = true;
      return adopted;
    });
  }
}
