// The address ledger of one state directory: every record of the node's addresses, and the only
// code that changes a record's kind. Each transition below is one named edge of the state machine;
// it checks its precondition (a violated one is a bug: LedgerError) and commits its change as one
// journal entry, so a crash never leaves half a transition. Pure: no I/O but the injected journal,
// no clock (callers pass `now`).
//
//            beginAdd ─ addDone ──► pod ◄── take ── pool ◄── fillDone/grown/adopt/cooled
//               │                    │                 │
//             undo           coolDown│releasePod       │surplus/lost         beginFill/beginGrow
//                                    ▼        │        ▼                          │
//                                 cooling ────┼──► intent(release) ── released    undo
//                                    expire   │
//                                             └── dropShared (another record holds the address)
import {
  addressKey,
  fillKey,
  holds,
  keyOf,
  ownerKey,
  type Address,
  type CoolingRecord,
  type IntentRecord,
  type Owner,
  type PodRecord,
  type PoolRecord,
  type Rec,
} from "./records.js";

export type JournalOp = { put: Rec } | { del: string };

/** Where the ledger's changes go: one call per transition; `durable` ones must survive a power loss. */
export interface Journal {
  commit(ops: readonly JournalOp[], durable: boolean): void;
}

/** A transition whose precondition does not hold: a bug in the caller, never a cloud condition. */
export class LedgerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LedgerError";
  }
}

/** The fields of a held address (what a pod, pool or cooling record carries besides its kind). */
export type HeldAddress = Address & { ip: string; portId: string };

const addressOf = (r: Rec): Address => {
  const a: Address = { mode: r.mode, serverId: r.serverId, networkId: r.networkId };
  for (const k of ["portId", "ip", "subnetId", "prefix", "gateway", "dns", "mac", "hostIfname"] as const)
    if (r[k] !== undefined) (a as unknown as Record<string, unknown>)[k] = r[k];
  return a;
};

const held = (r: Rec, what: string): HeldAddress => {
  if (r.ip === undefined || r.portId === undefined) throw new LedgerError(`${what}: ${keyOf(r)} has no address`);
  return { ...addressOf(r), ip: r.ip, portId: r.portId };
};

export class Ledger {
  readonly #recs = new Map<string, Rec>();
  /** Intents whose work is under way in this process (not persisted: after a crash none is). */
  readonly #claimed = new Set<string>();
  /** Intents another process is working on (it holds their intent locks): claimed until it is done. */
  readonly #foreign = new Set<string>();
  #journal: Journal;

  constructor(journal: Journal, loaded: Iterable<Rec> = []) {
    this.#journal = journal;
    for (const r of loaded) this.#recs.set(keyOf(r), r);
  }

  /**
   * The records as the journal has them now (this writer took the node lock again after working
   * without it); its own claims hold, and the intents others work on are marked again.
   */
  reload(journal: Journal, loaded: Iterable<Rec>, heldElsewhere: (key: string) => boolean): void {
    this.#journal = journal;
    this.#recs.clear();
    for (const r of loaded) this.#recs.set(keyOf(r), r);
    for (const k of [...this.#claimed]) if (this.#recs.get(k)?.kind !== "intent") this.#claimed.delete(k);
    this.#foreign.clear();
    this.markForeign(heldElsewhere);
  }

  /** Intents another process works on now are not orphans: claimed for as long as it holds their lock. */
  markForeign(heldElsewhere: (key: string) => boolean): void {
    for (const [k, r] of this.#recs)
      if (r.kind === "intent" && !this.#claimed.has(k) && heldElsewhere(k)) {
        this.#claimed.add(k);
        this.#foreign.add(k);
      }
  }

  /** Intents another process worked on: those it let go of (done, or it died) are no longer claimed. */
  recheckForeign(heldElsewhere: (key: string) => boolean): void {
    for (const k of [...this.#foreign])
      if (this.#recs.get(k)?.kind !== "intent" || !heldElsewhere(k)) {
        this.#foreign.delete(k);
        this.#claimed.delete(k);
      }
  }

  // ---- reading

  get(key: string): Rec | undefined {
    return this.#recs.get(key);
  }
  /** The record of a pod attachment: its pod record, or its add or release intent. */
  ofOwner(o: Owner): Rec | undefined {
    return this.#recs.get(ownerKey(o));
  }
  /** The pod record of a pod attachment. */
  pod(o: Owner): PodRecord | undefined {
    const r = this.ofOwner(o);
    return r?.kind === "pod" ? r : undefined;
  }
  all(filter: (r: Rec) => boolean = () => true): Rec[] {
    return [...this.#recs.values()].filter(filter);
  }
  /** Another record than `r` holds r's address on r's port (a pod's, the pool's, a cooling one). */
  heldByAnother(r: Rec): boolean {
    if (r.ip === undefined) return false;
    for (const o of this.#recs.values()) if (o !== r && holds(o) && o.ip === r.ip && o.portId === r.portId) return true;
    return false;
  }
  /** Some record holds `ip` (on any port). */
  knows(ip: string): boolean {
    for (const o of this.#recs.values()) if (holds(o) && o.ip === ip) return true;
    return false;
  }
  /** Free pool records (no other record holds their address), oldest first. */
  free(filter: (r: Rec) => boolean): PoolRecord[] {
    return this.all(filter)
      .filter((r): r is PoolRecord => r.kind === "pool" && !this.heldByAnother(r))
      .sort((a, b) => a.createdAt - b.createdAt);
  }
  /** Intents no work of this process is doing: left by a crash, or pending after a failure. */
  orphans(filter: (r: Rec) => boolean): IntentRecord[] {
    return this.all(filter).filter((r): r is IntentRecord => r.kind === "intent" && !this.#claimed.has(keyOf(r)));
  }
  claimed(key: string): boolean {
    return this.#claimed.has(key);
  }
  /** Mark an intent as being worked on here (false: someone here already is). */
  claim(key: string): boolean {
    if (this.#recs.get(key)?.kind !== "intent" || this.#claimed.has(key)) return false;
    this.#claimed.add(key);
    return true;
  }
  unclaim(key: string): void {
    this.#claimed.delete(key);
  }

  // ---- transitions

  #commit(ops: Array<{ put: Rec } | { del: string }>, durable: boolean): void {
    this.#journal.commit(ops, durable);
    for (const op of ops) {
      if ("put" in op) this.#recs.set(keyOf(op.put), op.put);
      else {
        this.#recs.delete(op.del);
        this.#claimed.delete(op.del);
      }
    }
  }
  #expect<K extends Rec["kind"]>(key: string, kinds: K[], what: string): Extract<Rec, { kind: K }> {
    const r = this.#recs.get(key);
    if (r === undefined || !(kinds as string[]).includes(r.kind))
      throw new LedgerError(`${what}: ${key} is ${r === undefined ? "absent" : r.kind}, not ${kinds.join(" or ")}`);
    return r as Extract<Rec, { kind: K }>;
  }
  #intent(key: string, ops: IntentRecord["op"][], what: string): IntentRecord {
    const r = this.#expect(key, ["intent"], what);
    if (!ops.includes(r.op)) throw new LedgerError(`${what}: ${key} is a ${r.op} intent, not ${ops.join(" or ")}`);
    return r;
  }
  #vacant(key: string, what: string): void {
    const r = this.#recs.get(key);
    if (r !== undefined) throw new LedgerError(`${what}: ${key} is taken by a ${r.kind} record`);
  }
  // An address comes back to this node (a batch, a pool port, an adoption) while a release of it is
  // still recorded: that release committed with its answer lost, or never will now. The address is
  // the newcomer's; the stale release goes.
  #vacantForAddress(ip: string, what: string): Array<{ del: string }> {
    const r = this.#recs.get(addressKey(ip));
    if (r === undefined) return [];
    if (r.kind === "intent" && r.op === "release" && !this.#claimed.has(addressKey(ip)))
      return [{ del: addressKey(ip) }];
    throw new LedgerError(`${what}: ${addressKey(ip)} is taken by a ${r.kind} record`);
  }

  /** A pod's address is about to be made: durable before the cloud write. */
  beginAdd(o: Owner, at: Address & { before?: string[] }, now: number): IntentRecord {
    const key = ownerKey(o);
    this.#vacant(key, "beginAdd");
    const r: IntentRecord = { ...at, kind: "intent", op: "add", owner: o, createdAt: now, updatedAt: now };
    this.#commit([{ put: r }], true);
    this.#claimed.add(key);
    return r;
  }

  /** An add or fill intent learns more before its (next) cloud write: the port's addresses before, its port. */
  note(
    key: string,
    patch: Partial<Pick<IntentRecord, "before" | "portId" | "ip" | "mac" | "error">>,
    now: number,
  ): void {
    const r = this.#intent(key, ["add", "fill", "release"], "note");
    this.#commit(
      [{ put: { ...r, ...patch, updatedAt: now } }],
      patch.before !== undefined || patch.portId !== undefined,
    );
  }

  /** add → pod: the cloud made the pod's address. */
  addDone(o: Owner, addr: HeldAddress, now: number): PodRecord {
    const r = this.#intent(ownerKey(o), ["add"], "addDone");
    const pod: PodRecord = { ...addr, kind: "pod", owner: o, createdAt: r.createdAt, updatedAt: now };
    this.#commit([{ put: pod }], false);
    this.#claimed.delete(ownerKey(o));
    return pod;
  }

  /** add, fill or grow → gone: nothing of it is left in the cloud. */
  undo(key: string): void {
    this.#intent(key, ["add", "fill", "grow"], "undo");
    this.#commit([{ del: key }], false);
  }

  /** pool → pod: a pod takes a free address (no cloud call). */
  take(o: Owner, ip: string, patch: Partial<Address>, now: number): PodRecord {
    const p = this.#expect(addressKey(ip), ["pool"], "take");
    if (this.heldByAnother(p)) throw new LedgerError(`take: ${ip} is held by another record`);
    this.#vacant(ownerKey(o), "take");
    const pod: PodRecord = { ...held(p, "take"), ...patch, kind: "pod", owner: o, createdAt: now, updatedAt: now };
    this.#commit([{ put: pod }, { del: addressKey(ip) }], false);
    return pod;
  }

  /**
   * pod → cooling: a pod gave its address back; it is kept from new pods until `coolUntil`. Also
   * from a pod's pending release that keeps a cool-down (eni: its detach failed, now done).
   */
  coolDown(o: Owner, o2: { coolUntil: number; detached?: boolean }, now: number): CoolingRecord {
    const r = this.#expect(ownerKey(o), ["pod", "intent"], "coolDown");
    if (r.kind === "intent" && r.op !== "release")
      throw new LedgerError(`coolDown: ${ownerKey(o)} is a ${r.op} intent`);
    const addr = held(r, "coolDown");
    // A release of this address still recorded is stale: the address is this pod's (it came back).
    const stale = this.#vacantForAddress(addr.ip, "coolDown");
    const c: CoolingRecord = {
      ...addr,
      kind: "cooling",
      coolUntil: o2.coolUntil,
      heldBy: `${o.containerId}/${o.ifname}`,
      ...(o2.detached === true ? { detached: true } : {}),
      // kept through cooling and back into the pool: a recycled address is older than a new one
      createdAt: r.createdAt,
      updatedAt: now,
    };
    this.#commit([...stale, { put: c }, { del: ownerKey(o) }], true);
    return c;
  }

  /** pod (or its release) → gone, no cloud call: another record holds the same address now. */
  dropShared(o: Owner): void {
    const r = this.#expect(ownerKey(o), ["pod", "intent"], "dropShared");
    if (!this.heldByAnother(r)) throw new LedgerError(`dropShared: no other record holds ${r.ip ?? "its address"}`);
    this.#commit([{ del: ownerKey(o) }], false);
  }

  /** pod → release: its address goes back to the cloud (no cool-down); durable before the cloud write. */
  releasePod(o: Owner, opts: { coolUntil?: number; error?: string }, now: number): IntentRecord {
    const r = this.#expect(ownerKey(o), ["pod", "intent"], "releasePod");
    if (r.kind === "intent" && r.op !== "release")
      throw new LedgerError(`releasePod: ${ownerKey(o)} is a ${r.op} intent`);
    const i: IntentRecord = {
      ...addressOf(r),
      kind: "intent",
      op: "release",
      owner: o,
      ...(opts.coolUntil === undefined ? {} : { coolUntil: opts.coolUntil }),
      ...(opts.error === undefined ? {} : { error: opts.error }),
      createdAt: r.createdAt,
      updatedAt: now,
    };
    this.#commit([{ put: i }], true);
    return i;
  }

  /** nothing → release by owner: a pod's port must be looked for (its record is gone; the cloud failed). */
  searchLater(o: Owner, at: Address, error: string, now: number): IntentRecord {
    this.#vacant(ownerKey(o), "searchLater");
    const i: IntentRecord = { ...at, kind: "intent", op: "release", owner: o, error, createdAt: now, updatedAt: now };
    this.#commit([{ put: i }], true);
    return i;
  }

  /** cooling → release: due, and going back to the cloud. */
  expire(ip: string, now: number): IntentRecord {
    const c = this.#expect(addressKey(ip), ["cooling"], "expire");
    if (c.coolUntil > now) throw new LedgerError(`expire: ${ip} cools down until ${c.coolUntil}`);
    return this.#toRelease(c, undefined, now);
  }

  /** pool → release: more free addresses than the targets keep. */
  surplus(ip: string, now: number): IntentRecord {
    return this.#toRelease(this.#expect(addressKey(ip), ["pool"], "surplus"), undefined, now);
  }

  /** pool → release: it can serve no pod (eni: its NIC is no longer in the VM). */
  lost(ip: string, why: string, now: number): IntentRecord {
    return this.#toRelease(this.#expect(addressKey(ip), ["pool"], "lost"), why, now);
  }

  #toRelease(r: PoolRecord | CoolingRecord, error: string | undefined, now: number): IntentRecord {
    const i: IntentRecord = {
      ...addressOf(r),
      kind: "intent",
      op: "release",
      ...(error === undefined ? {} : { error }),
      createdAt: r.createdAt,
      updatedAt: now,
    };
    this.#commit([{ put: i }], true);
    return i;
  }

  /** An intent's cloud work failed; it stays, pending, with why. */
  failed(key: string, error: string, now: number): void {
    const r = this.#expect(key, ["intent"], "failed");
    this.#commit([{ put: { ...r, error, updatedAt: now } }], false);
    this.#claimed.delete(key);
  }

  /** release → gone: the cloud has the address back (or it was never there). */
  released(key: string): void {
    this.#intent(key, ["release"], "released");
    this.#commit([{ del: key }], false);
  }

  /** cooling → pool: due, and the node agent keeps it for the next pod. */
  cooled(ip: string, now: number): PoolRecord {
    const c = this.#expect(addressKey(ip), ["cooling"], "cooled");
    if (c.coolUntil > now) throw new LedgerError(`cooled: ${ip} cools down until ${c.coolUntil}`);
    if (c.detached === true) throw new LedgerError(`cooled: ${ip}'s port was detached; it cannot serve a pod here`);
    if (this.heldByAnother(c)) throw new LedgerError(`cooled: ${ip} is held by another record`);
    const p: PoolRecord = { ...held(c, "cooled"), kind: "pool", createdAt: c.createdAt, updatedAt: now };
    this.#commit([{ put: p }], true);
    return p;
  }

  /** nothing → fill: a batch of pool addresses is about to be added to the VM's port. */
  beginFill(at: Address & { portId: string }, before: string[], now: number): IntentRecord {
    const key = fillKey(at.portId);
    this.#vacant(key, "beginFill");
    const r: IntentRecord = { ...at, kind: "intent", op: "fill", before, createdAt: now, updatedAt: now };
    delete r.ip;
    this.#commit([{ put: r }], true);
    this.#claimed.add(key);
    return r;
  }

  /** fill → pool: the batch's addresses are on the port. */
  fillDone(portId: string, added: HeldAddress[], now: number): PoolRecord[] {
    this.#intent(fillKey(portId), ["fill"], "fillDone");
    const ops: Array<{ put: Rec } | { del: string }> = [];
    const out: PoolRecord[] = [];
    for (const a of added) {
      ops.push(...this.#vacantForAddress(a.ip, "fillDone"));
      const p: PoolRecord = { ...a, kind: "pool", createdAt: now, updatedAt: now };
      ops.push({ put: p });
      out.push(p);
    }
    ops.push({ del: fillKey(portId) });
    this.#commit(ops, true);
    return out;
  }

  /** nothing → grow: an eni pool port exists and is about to be tagged and attached. */
  beginGrow(addr: HeldAddress, now: number): IntentRecord {
    const ops = this.#vacantForAddress(addr.ip, "beginGrow");
    const r: IntentRecord = { ...addr, kind: "intent", op: "grow", createdAt: now, updatedAt: now };
    this.#commit([...ops, { put: r }], true);
    this.#claimed.add(addressKey(addr.ip));
    return r;
  }

  /** grow → pool: the pool port is attached and its NIC is in the VM. */
  grown(ip: string, hostIfname: string, now: number): PoolRecord {
    const r = this.#intent(addressKey(ip), ["grow"], "grown");
    const p: PoolRecord = {
      ...held(r, "grown"),
      hostIfname,
      kind: "pool",
      labelled: true,
      createdAt: now,
      updatedAt: now,
    };
    this.#commit([{ put: p }], true);
    this.#claimed.delete(addressKey(ip));
    return p;
  }

  /** nothing → pool: the cloud says this node's pool holds an address no record knows (recovery). */
  adopt(addr: HeldAddress, now: number): PoolRecord {
    if (this.knows(addr.ip)) throw new LedgerError(`adopt: a record holds ${addr.ip} already`);
    const ops = this.#vacantForAddress(addr.ip, "adopt");
    const p: PoolRecord = { ...addr, kind: "pool", createdAt: now, updatedAt: now };
    this.#commit([...ops, { put: p }], true);
    return p;
  }

  /** pool → gone: its address is no longer on its port (someone removed it in the cloud). */
  forget(ip: string): void {
    this.#expect(addressKey(ip), ["pool"], "forget");
    this.#commit([{ del: addressKey(ip) }], false);
  }

  /** What the port's tags say now (eni: the pod's, or the pool's). */
  label(key: string, labelled: boolean, now: number): void {
    const r = this.#expect(key, ["pod", "pool"], "label");
    this.#commit([{ put: { ...r, labelled, updatedAt: now } }], false);
  }
}
