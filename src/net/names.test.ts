import { test } from "node:test";
import assert from "node:assert/strict";
import { hostVethName, podChainName, tableIdFor, tempIfname } from "./names.js";

test("host veth names are deterministic, ≤ 15 chars, and differ per container and interface", () => {
  const a = hostVethName("0123456789abcdef".repeat(4), "eth0");
  assert.equal(a, hostVethName("0123456789abcdef".repeat(4), "eth0"));
  assert.match(a, /^veth[0-9a-f]{11}$/);
  assert.notEqual(a, hostVethName("0123456789abcdef".repeat(4), "veth0"));
  assert.notEqual(a, hostVethName("other", "eth0"));
  assert.ok(tempIfname("x").length <= 15);
});

test("chain names fit iptables' 28 characters", () => {
  const c = podChainName("cni0", "c".repeat(64), "eth0");
  assert.equal(c.length, 28);
  assert.match(c, /^TCNP-[0-9a-f]{23}$/);
});

test("table ids are stable and above the reserved range", () => {
  assert.equal(tableIdFor("vethabc"), tableIdFor("vethabc"));
  assert.ok(tableIdFor("vethabc") >= 1000);
});
