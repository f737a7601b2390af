// Advisory file locks (flock), the same primitive Go's host-local uses. Non-blocking attempts with
// jittered sleeps keep the event loop free; a holder that dies releases its lock with its process.
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
  /** Run `fn` holding the named lock; waits at most `timeoutMs`. */
  withLock<T>(name: string, fn: () => Promise<T>, opts?: { timeoutMs?: number }): Promise<T>;
}

export class FileLock implements Lock {
  readonly #dir: string;
  readonly #clock: Clock;
  constructor(dir: string, clock: Clock) {
    this.#dir = dir;
    this.#clock = clock;
  }

  async withLock<T>(name: string, fn: () => Promise<T>, opts: { timeoutMs?: number } = {}): Promise<T> {
    const native = tcnpNative();
    fs.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    const file = path.join(this.#dir, `${name}.lock`);
    const fd = fs.openSync(file, "a", 0o600);
    try {
      const deadline = this.#clock.now() + (opts.timeoutMs ?? 120_000);
      let wait = 2;
      for (;;) {
        const rc = native.flock(fd, native.LOCK_EX | native.LOCK_NB);
        if (rc === 0) break;
        if (rc !== native.EWOULDBLOCK) throw new LockError("io", `Cannot lock "${file}": errno ${rc}`);
        if (this.#clock.now() >= deadline) {
          throw new LockError(
            "busy",
            `Cannot acquire lock "${file}" within ${opts.timeoutMs ?? 120_000} ms: another tcnp process holds it`,
          );
        }
        await this.#clock.sleep(wait + Math.random() * wait);
        wait = Math.min(wait * 2, 50);
      }
      return await fn();
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** An in-process lock (tests, and the emulator). */
export class MemoryLock implements Lock {
  #tails = new Map<string, Promise<unknown>>();
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    this.#tails.set(
      name,
      prev.then(() => mine),
    );
    await prev.catch(() => {});
    try {
      return await fn();
    } finally {
      release();
    }
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
  withLock<T>(name: string, fn: () => Promise<T>, opts?: { timeoutMs?: number }): Promise<T> {
    return this.#queue.withLock(name, () => this.#inner.withLock(name, fn, opts));
  }
}
