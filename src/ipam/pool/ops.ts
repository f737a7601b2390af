// What differs between the modes, behind one small interface (the shape of cilium's
// NodeOperations): the pool (pool.ts) decides what to do with the ledger's records, a mode's
// operations do the cloud work for it (mix: addresses on the VM's port; eni: ports and their NICs)
// and record each step in the ledger, intents first.
import type { CniResult } from "../../cni/result.js";
import type { Lock } from "../../state/lock.js";
import type { Ledger } from "../ledger/ledger.js";
import type { Address, IntentRecord, Mode, Owner, PodRecord, PoolRecord, Rec } from "../ledger/records.js";
import type { IpamSession } from "../session.js";

/** What a pool and its mode's operations work with. */
export interface PoolContext {
  s: IpamSession;
  ledger: Ledger;
  /** The records this pool looks after (its mode and networks). */
  mine(r: Rec): boolean;
  now(): number;
  /** The node agent (keeps a warm pool; cooled addresses serve again), or one request without it. */
  resident: boolean;
  /** Serialises this process's writes of a VM port: real Neutron's If-Match is no compare-and-swap. */
  portLock: Lock;
  /**
   * Run the slow cloud work of intent `key` (a Nova attach or detach takes seconds) without holding
   * the node from other writers: a plugin process lets go of the node lock meanwhile, holding the
   * intent's own lock so that no one takes the intent for an orphan, and finds the ledger as others
   * left it when it has the node lock again. No ledger write happens inside `work`. The agent keeps
   * its lock throughout (its requests run side by side anyway).
   */
  unlocked<T>(key: string, work: () => Promise<T>): Promise<T>;
}

export interface ModeOps {
  readonly mode: Mode;
  /** Whether one cloud write makes many addresses (mix), so a burst's fill asks for more than its waiters. */
  readonly batched: boolean;
  /** A create whose answer was lost: the cloud may hold what no record names; compare with it soon. */
  readonly unsure?: boolean;
  /** What the node can hold at most, learnt from the cloud (eni: the VM's PCIe slots, once an attach found them full). */
  readonly learntMaximum?: number | undefined;
  /** The port the pool's addresses live on, once known (mix: the VM's port). */
  readonly port: string | undefined;
  /** How many more free addresses the pool may hold (mix: at most a quarter of its subnet). */
  cap(free: number): Promise<number>;
  /** Make up to `n` pool addresses; how many were made. `more()` false: stop early (the agent is stopping). */
  fill(n: number, more: () => boolean): Promise<number>;
  /** Make a pod's own address on demand (no pool stock; one request without the agent). */
  addFor(o: Owner, pod: ReadonlyMap<string, string>): Promise<PodRecord>;
  /** One look at the node, then a synchronous check per free record: what it needs to serve, or why it cannot. */
  takeable(): Promise<(p: PoolRecord) => Partial<Address> | string>;
  /** A pod's address cools down (the agent: as it is; without it, eni: the port is detached first). */
  coolDown(o: Owner, coolUntil: number): Promise<void>;
  /** Finish release intents: the addresses back to the cloud (mix: one write for all); each released, or failed. */
  giveBack(intents: IntentRecord[]): Promise<void>;
  /** Undo an add, fill or grow intent: remove from the cloud what it may have made. */
  undo(i: IntentRecord): Promise<void>;
  /** Adopt what the cloud says is this node's pool and no record knows; forget pool records the cloud lost. */
  recover(): Promise<number>;
  /** Bring the cloud's labels (tags) in line with the records, off the pods' path. */
  relabel(): Promise<void>;
  /** DEL with no record: release what prevResult or the cloud's marks say this attachment held. */
  releaseUnknown(o: Owner, prev: CniResult | undefined): Promise<void>;
  /** GC: cloud objects of this node that no record knows and no valid attachment claims; the errors. */
  collectOrphans(valid: ReadonlySet<string>): Promise<string[]>;
}
