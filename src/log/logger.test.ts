import { test } from "node:test";
import assert from "node:assert/strict";
import { createLogger, memorySink, redact } from "./logger.js";

test("log lines are JSON with level, message and fields; below-level lines are dropped", () => {
  const sink = memorySink();
  const log = createLogger(sink, { level: "info", now: () => new Date(0) }).child({ plugin: "veth-route" });
  log.debug("hidden");
  log.info("added", { ip: "10.0.0.5" });
  assert.equal(sink.lines.length, 1);
  assert.deepEqual(JSON.parse(sink.lines[0]!), {
    time: "1970-01-01T00:00:00.000Z",
    level: "info",
    msg: "added",
    plugin: "veth-route",
    ip: "10.0.0.5",
  });
});

test("secret-looking keys are masked at any depth, errors reduced to name and message", () => {
  const out = redact({
    openstackConf: { username: "admin", password: "hunter2", applicationCredentialSecret: "s" },
    headers: { "X-Auth-Token": "tok" },
    e: new Error("x"),
  });
  assert.equal(JSON.stringify(out).includes("hunter2"), false);
  assert.equal(JSON.stringify(out).includes('tok"'), false);
  assert.deepEqual((out as { e: unknown }).e, { name: "Error", message: "x" });
});

test("a throwing sink never breaks the caller", () => {
  const log = createLogger({
    write: () => {
      throw new Error("disk full");
    },
  });
  assert.doesNotThrow(() => log.error("x"));
});
