// Advisory file locks (flock), the same primitive Go's host-local uses. Non-blocking attempts with
// jittered sleeps keep the event loop free; a holder that dies releases its lock with its process
// (the kernel does it), which is what makes a lock a safe test of "is its holder still at work" —
// unlike a PID, which another PID namespace cannot see and which the kernel reuses.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { tcnpNative } from "../native/load.js";
import type { Clock } from "../base/clock.js";

/** A lock that could not be taken: held too long by another process ("busy"), or the file failed ("io"). */
export class LockError extends Error {
  readonly kind: "busy" | "io";
  constructor(kind: "busy" | "io", message: string) {
    super(message);
    this.name = "LockError";
    this.kind = kind;
  }
}

export interface Lock {
  /** Take the named lock (waiting at most `timeoutMs`); the returned function releases it. */
  acquire(name: string, opts?: { timeoutMs?: number }): Promise<() => void>;
  /** Run `fn` holding the named lock; waits at most `timeoutMs`. */
  withLock<T>(name: string, fn: () => Promise<T>, opts?: { timeoutMs?: number }): Promise<T>;
}

async function withAcquired<T>(l: Lock, name: string, fn: () => Promise<T>, opts?: { timeoutMs?: number }): Promise<T> {
  const release = await l.acquire(name, opts);
  try {
    return await fn();
  } finally {
    release();
  }
}

export class FileLock implements Lock {
  readonly #dir: string;
  readonly #clock: Clock;
  constructor(dir: string, clock: Clock) {
    this.#dir = dir;
    this.#clock = clock;
  }

  /**
   * Take the named lock. `timeoutMs` undefined with `waiting`: as long as it takes, `waiting` told
   * every 5 s (a long-running writer: the node agent holds the node lock for its lifetime).
   */
  async acquire(name: string, opts: { timeoutMs?: number; waiting?: (ms: number) => void } = {}): Promise<() => void> {
    const native = tcnpNative();
    fs.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    const file = path.join(this.#dir, `${name}.lock`);
    const fd = fs.openSync(file, "a", 0o600);
    const t0 = this.#clock.now();
    const forever = opts.waiting !== undefined && opts.timeoutMs === undefined;
    const timeoutMs = opts.timeoutMs ?? 120_000;
    let told = t0;
    let wait = 2;
    for (;;) {
      const rc = native.flock(fd, native.LOCK_EX | native.LOCK_NB);
      if (rc === 0) break;
      if (rc !== native.EWOULDBLOCK) {
        fs.closeSync(fd);
        throw new LockError("io", `Cannot lock "${file}": errno ${rc}`);
      }
      const now = this.#clock.now();
      if (!forever && now - t0 >= timeoutMs) {
        fs.closeSync(fd);
        throw new LockError(
          "busy",
          `Cannot acquire lock "${file}" within ${timeoutMs} ms: another tcnp process holds it`,
        );
      }
      if (forever && now - told >= 5000) {
        told = now;
        opts.waiting?.(now - t0);
      }
      await this.#clock.sleep(wait + Math.random() * wait);
      wait = Math.min(wait * 2, 50);
    }
    let open = true;
    return () => {
      if (open) fs.closeSync(fd);
      open = false;
    };
  }

  withLock<T>(name: string, fn: () => Promise<T>, opts?: { timeoutMs?: number }): Promise<T> {
    return withAcquired(this, name, fn, opts);
  }
}

/** An in-process lock (tests, and the emulator). */
export class MemoryLock implements Lock {
  #tails = new Map<string, Promise<unknown>>();
  async acquire(name: string): Promise<() => void> {
    const prev = this.#tails.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    this.#tails.set(
      name,
      prev.then(() => mine),
    );
    await prev.catch(() => {});
    return release;
  }
  withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return withAcquired(this, name, fn);
  }
}

/**
 * One lock shared by the concurrent requests of a long-running process (the node agent): they queue
 * in process, and only the head of the queue takes the file lock, so waiting costs no polling.
 */
export class QueuedLock implements Lock {
  readonly #queue = new MemoryLock();
  readonly #inner: Lock;
  constructor(inner: Lock) {
    this.#inner = inner;
  }
  async acquire(name: string, opts?: { timeoutMs?: number }): Promise<() => void> {
    const out = await this.#queue.acquire(name);
    try {
      const inner = await this.#inner.acquire(name, opts);
      return () => {
        inner();
        out();
      };
    } catch (e) {
      out();
      throw e;
    }
  }
  withLock<T>(name: string, fn: () => Promise<T>, opts?: { timeoutMs?: number }): Promise<T> {
    return withAcquired(this, name, fn, opts);
  }
}

/**
 * Locks that say "this intent's work is under way": its worker holds the intent's lock while it
 * works without the node lock (a Nova attach takes seconds), so another writer that finds the
 * intent knows it is not an orphan — and finds out at once once the worker is gone.
 */
export interface IntentLocks {
  /** Hold the intent's lock (undefined: someone else holds it); the returned function lets go. */
  tryHold(key: string): (() => void) | undefined;
  /** Whether another holds the intent's lock now. */
  heldElsewhere(key: string): boolean;
}

export class FileIntentLocks implements IntentLocks {
  readonly #dir: string;
  constructor(lockDir: string) {
    this.#dir = path.join(lockDir, "intents");
  }
  #file(key: string): string {
    return path.join(this.#dir, `${createHash("sha256").update(key).digest("hex").slice(0, 32)}.lock`);
  }
  tryHold(key: string): (() => void) | undefined {
    const native = tcnpNative();
    fs.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    const file = this.#file(key);
    const fd = fs.openSync(file, "a", 0o600);
    if (native.flock(fd, native.LOCK_EX | native.LOCK_NB) !== 0) {
      fs.closeSync(fd);
      return undefined;
    }
    return () => {
      // Unlinked before it is unlocked: whoever opens the name next gets a fresh file. The intent
      // is settled by then (the ledger says so, written under the node lock).
      fs.rmSync(file, { force: true });
      fs.closeSync(fd);
    };
  }
  /** Whether another process holds any intent's lock now (one is at work without the node lock). */
  anyHeldElsewhere(): boolean {
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.#dir).filter((n) => n.endsWith(".lock"));
    } catch {
      return false;
    }
    const native = tcnpNative();
    for (const n of names) {
      let fd: number;
      try {
        fd = fs.openSync(path.join(this.#dir, n), "r");
      } catch {
        continue;
      }
      try {
        if (native.flock(fd, native.LOCK_EX | native.LOCK_NB) !== 0) return true;
      } finally {
        fs.closeSync(fd);
      }
    }
    return false;
  }

  heldElsewhere(key: string): boolean {
    if (!fs.existsSync(this.#file(key))) return false;
    const release = this.tryHold(key);
    if (release === undefined) return true;
    release();
    return false;
  }
}
