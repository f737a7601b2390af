// The cloud work of a pool: one round of upkeep and one fill at a time, and a backoff after the
// cloud fails. Shared by every pool (mix and eni).
import type { Clock } from "../../base/clock.js";

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
export class PoolWork<F> {
  #maintaining: Promise<void> | undefined;
  #fill: Promise<F> | undefined;
  #stopping = false;
  #lastFillEnd = -Infinity;
  readonly #maintain: () => Promise<void>;
  readonly #fillBatch: () => Promise<F>;
  readonly #clock: Clock;

  constructor(o: { maintain: () => Promise<void>; fill: () => Promise<F>; clock: Clock }) {
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

  /** The fill in flight, or a new one: every caller gets its outcome. */
  fill(): Promise<F> {
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
