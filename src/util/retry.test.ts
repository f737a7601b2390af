import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffMs, retry, RetryExhaustedError } from "./retry.js";

const sleeps: number[] = [];
const sleep = async (ms: number): Promise<void> => void sleeps.push(ms);

test("retries until success, sleeping a growing, capped backoff", async () => {
  sleeps.length = 0;
  let calls = 0;
  const v = await retry(async () => (++calls < 4 ? Promise.reject(new Error("412")) : "ok"), {
    maxAttempts: 5,
    minDelayMs: 10,
    maxDelayMs: 30,
    sleep,
    random: () => 1,
  });
  assert.equal(v, "ok");
  assert.equal(calls, 4);
  assert.deepEqual(sleeps, [10, 20, 30]);
});

test("gives up after maxAttempts with the last failure as the cause", async () => {
  let calls = 0;
  const last = new Error("still 412");
  await assert.rejects(
    retry(
      async () => {
        calls++;
        throw last;
      },
      { maxAttempts: 3, sleep },
    ),
    (e: unknown) => e instanceof RetryExhaustedError && e.attempts === 3 && e.cause === last,
  );
  assert.equal(calls, 3);
});

test("a failure that is not retriable passes through at once", async () => {
  let calls = 0;
  const fatal = new Error("403");
  await assert.rejects(
    retry(
      async () => {
        calls++;
        throw fatal;
      },
      { maxAttempts: 5, sleep, retriable: (e) => e !== fatal },
    ),
    fatal,
  );
  assert.equal(calls, 1);
});

test("jitter takes between (1 - jitter) and all of the backoff; inputs are validated", async () => {
  assert.equal(
    backoffMs(0, { minDelayMs: 100, jitter: 0.5 }, () => 0),
    50,
  );
  assert.equal(
    backoffMs(0, { minDelayMs: 100, jitter: 0.5 }, () => 1),
    100,
  );
  assert.equal(
    backoffMs(10, { minDelayMs: 100, maxDelayMs: 400, jitter: 0 }, () => 0.3),
    400,
  );
  await assert.rejects(
    retry(async () => 1, { maxAttempts: 0, sleep }),
    RangeError,
  );
  await assert.rejects(
    retry(async () => 1, { maxAttempts: 1, jitter: 2, sleep }),
    RangeError,
  );
  await assert.rejects(
    retry(async () => 1, { maxAttempts: 1, minDelayMs: 50, maxDelayMs: 10, sleep }),
    RangeError,
  );
});
