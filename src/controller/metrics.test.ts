import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { Metrics } from "./metrics.js";

const promtool = spawnSync("promtool", ["--version"]).status === 0;

test(
  "the text format: a histogram is one family of cumulative buckets, sum and count; promtool accepts it all",
  {},
  () => {
    const m = new Metrics();
    m.inc("tcnp_things_total", "Things done, by outcome", { outcome: "ok" });
    m.inc("tcnp_things_total", "Things done, by outcome", { outcome: "ok" }, 2);
    m.set("tcnp_pool_free", "Free addresses", 3, { mode: "mix", networks: 'a"b' });
    for (const v of [0.003, 0.02, 0.02, 7])
      m.observe("tcnp_op_duration_seconds", "Op latency", v, [0.01, 0.1, 1], { op: "add" });
    const text = m.render();
    assert.equal(text.match(/^# TYPE tcnp_op_duration_seconds histogram$/gm)?.length, 1);
    assert.doesNotMatch(text, /# TYPE tcnp_op_duration_seconds_(bucket|sum|count)/);
    for (const [le, n] of [
      ["0.01", 1],
      ["0.1", 3],
      ["1", 3],
      ["+Inf", 4],
    ] as const)
      assert.match(
        text,
        new RegExp(`^tcnp_op_duration_seconds_bucket\\{op="add",le="${le.replace("+", "\\+")}"\\} ${n}$`, "m"),
      );
    assert.match(text, /^tcnp_op_duration_seconds_sum\{op="add"\} 7\.043$/m);
    assert.match(text, /^tcnp_op_duration_seconds_count\{op="add"\} 4$/m);
    assert.match(text, /^tcnp_things_total\{outcome="ok"\} 3$/m);
    assert.match(text, /networks="a\\"b"/);
    if (!promtool) return; // (checked where promtool is installed: scripts/setup-deps.sh installs it)
    const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  },
);
