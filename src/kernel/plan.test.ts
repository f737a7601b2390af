import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeKernel } from "./fake-kernel.js";
import { applyPlan, runTeardown, type Step } from "./plan.js";
import { HOST } from "./types.js";

test("applyPlan undoes completed steps in reverse when one fails, keeping `keep` steps", async () => {
  const k = new FakeKernel();
  const pod = await k.createNetns("p");
  const steps: Step[] = [
    { op: "writeSysctl", ns: HOST, key: "net.ipv4.ip_forward", value: "1", keep: true },
    { op: "createVeth", ns: HOST, spec: { name: "vh", peer: { name: "eth0", netns: pod } } },
    { op: "setLink", ns: HOST, name: "vh", change: { up: true } },
    { op: "addRoute", ns: HOST, route: { dst: "10.0.0.5/32", dev: "vh", scope: "global" } },
    { op: "addRoute", ns: HOST, route: { dst: "10.0.0.5/32", dev: "vh", scope: "global" } },
  ];
  await assert.rejects(applyPlan(k, steps), { errno: "EEXIST" });
  assert.equal(await k.getLink(HOST, "vh"), undefined);
  assert.equal(await k.getLink(pod, "eth0"), undefined);
  assert.deepEqual(await k.listRoutes(HOST), []);
  assert.equal(k.readSysctl(HOST, "net.ipv4.ip_forward"), "1");
});

test("applyPlan restores a sysctl it changed, and a renamed link's name", async () => {
  const k = new FakeKernel();
  await k.createVeth(HOST, { name: "a", peer: { name: "b", netns: HOST } });
  const steps: Step[] = [
    { op: "writeSysctl", ns: HOST, key: "net.ipv4.conf.a.proxy_arp", value: "1" },
    { op: "setLink", ns: HOST, name: "a", change: { name: "renamed", alias: "a" } },
    { op: "addAddress", ns: HOST, addr: { cidr: "10.0.0.1/32", dev: "nope" } },
  ];
  await assert.rejects(applyPlan(k, steps), { errno: "ENODEV" });
  const a = await k.getLink(HOST, "a");
  assert.ok(a !== undefined);
  assert.equal(a.alias, undefined);
  assert.equal(k.readSysctl(HOST, "net.ipv4.conf.a.proxy_arp"), "0");
});

test("a failed announcement is a warning, not a failure", async () => {
  const k = new FakeKernel();
  const warnings: string[] = [];
  await applyPlan(k, [{ op: "announce", ns: HOST, dev: "missing", ip: "10.0.0.1" }], {
    onWarn: (m) => warnings.push(m),
  });
  assert.equal(warnings.length, 1);
});

test("runTeardown treats missing things and missing namespaces as success", async () => {
  const k = new FakeKernel();
  const errors = await runTeardown(k, [
    { op: "deleteLink", ns: HOST, name: "nope" },
    { op: "deleteRoute", ns: HOST, route: { dst: "10.0.0.0/24" } },
    { op: "deleteRule", ns: HOST, rule: { priority: 9, table: 9 } },
    { op: "deleteLink", ns: "/var/run/netns/gone", name: "eth0" },
    { op: "deleteIptables", ns: HOST, set: { chains: [{ table: "nat", name: "TCNP-X", rules: [] }], jumps: [] } },
  ]);
  assert.deepEqual(errors, []);
});
