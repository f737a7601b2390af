import { test } from "node:test";
import assert from "node:assert/strict";
import { applyText, deleteText, missingFrom, parseIptablesSave } from "./iptables.js";
import { emptyTables, restore } from "./fake-iptables.js";

const set = {
  chains: [{ table: "nat" as const, name: "TCNP-A", rules: ["-j MASQUERADE"] }],
  jumps: [{ table: "nat" as const, chain: "POSTROUTING", rule: "-s 10.0.0.5/32 -j TCNP-A" }],
};

test("parseIptablesSave reads chains and rules, keeping quoted comments intact", () => {
  const dump = parseIptablesSave(
    `# Generated\n*nat\n:PREROUTING ACCEPT [0:0]\n:TCNP-A - [0:0]\n-A PREROUTING -m comment --comment "a b" -j TCNP-A\nCOMMIT\n`,
  );
  assert.deepEqual(
    [...dump.get("nat")!],
    [
      ["PREROUTING", ['-m comment --comment "a b" -j TCNP-A']],
      ["TCNP-A", []],
    ],
  );
});

test("applyText declares (flushes) chains and appends only missing jumps", () => {
  const first = applyText(set, new Map());
  assert.equal(
    first,
    "*nat\n:TCNP-A - [0:0]\n-A TCNP-A -j MASQUERADE\n-A POSTROUTING -s 10.0.0.5/32 -j TCNP-A\nCOMMIT\n",
  );
  const t = restore(emptyTables(), first);
  assert.ok(!applyText(set, t).includes("-A POSTROUTING"));
  assert.deepEqual(missingFrom(set, t), []);
});

test("deleteText removes the jump, foreign jumps into the chain, then the chain; nothing when absent", () => {
  let t = restore(emptyTables(), applyText(set, new Map()));
  t = restore(t, "*nat\n-A PREROUTING -j TCNP-A\nCOMMIT\n");
  t = restore(t, deleteText(set, t));
  assert.equal(t.get("nat")!.has("TCNP-A"), false);
  assert.deepEqual(t.get("nat")!.get("PREROUTING"), []);
  assert.equal(deleteText(set, t), "");
  assert.deepEqual(missingFrom(set, t), [
    "chain nat/TCNP-A is missing",
    'rule "-s 10.0.0.5/32 -j TCNP-A" is missing from nat/POSTROUTING',
  ]);
});
