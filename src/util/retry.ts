// One retry loop for the whole code base (deno std's async/retry is the model): call `fn` until it
// returns, or throws something `retriable` rejects, or `maxAttempts` calls have failed. Between
// attempts it sleeps an exponential backoff with jitter, on an injected clock and random source.

export interface RetryOptions {
  /** Calls in all, at least 1. */
  maxAttempts: number;
  /** The first backoff, in ms (default 10). */
  minDelayMs?: number;
  /** The largest backoff, in ms (default 500). */
  maxDelayMs?: number;
  /** Backoff growth per attempt (default 2). */
  multiplier?: number;
  /** Share of each backoff that is random, 0..1 (default 0.5: between half and the whole). */
  jitter?: number;
  /** Which failures are worth another attempt (default: all). */
  retriable?: (e: unknown) => boolean;
  sleep: (ms: number) => Promise<void>;
  random?: () => number;
  /** Told of each failure that will be retried. */
  onRetry?: (e: unknown, attempt: number) => void;
}

/** Every attempt failed; `cause` is the last failure. */
export class RetryExhaustedError extends Error {
  readonly attempts: number;
  constructor(attempts: number, cause: unknown) {
    super(`Gave up after ${attempts} attempts: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "RetryExhaustedError";
    this.attempts = attempts;
  }
}

/** The backoff before attempt `attempt + 1` (attempt counts from 0). */
export function backoffMs(
  attempt: number,
  o: Pick<RetryOptions, "minDelayMs" | "maxDelayMs" | "multiplier" | "jitter">,
  random: () => number,
): number {
  const base = Math.min(o.maxDelayMs ?? 500, (o.minDelayMs ?? 10) * (o.multiplier ?? 2) ** attempt);
  const jitter = o.jitter ?? 0.5;
  return base * (1 - jitter + jitter * random());
}

export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  if (!Number.isInteger(o.maxAttempts) || o.maxAttempts < 1)
    throw new RangeError(`maxAttempts must be an integer ≥ 1 (got ${o.maxAttempts})`);
  if (o.jitter !== undefined && (o.jitter < 0 || o.jitter > 1))
    throw new RangeError(`jitter must be within 0..1 (got ${o.jitter})`);
  if ((o.minDelayMs ?? 10) < 0 || (o.maxDelayMs ?? 500) < (o.minDelayMs ?? 10))
    throw new RangeError("delays must satisfy 0 ≤ minDelayMs ≤ maxDelayMs");
  const random = o.random ?? Math.random;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (o.retriable !== undefined && !o.retriable(e)) throw e;
      if (attempt + 1 >= o.maxAttempts) throw new RetryExhaustedError(attempt + 1, e);
      o.onRetry?.(e, attempt);
      await o.sleep(backoffMs(attempt, o, random));
    }
  }
}
