import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeKernel } from "../kernel/fake-kernel.js";
import { applyPlan, runTeardown } from "../kernel/plan.js";
import { HOST } from "../kernel/types.js";
import { checkRecord, type AttachmentPlan } from "./attachment.js";
import { planHostDevice } from "./host-device/plan.js";
import { planVethHost } from "./veth-host/plan.js";
import { planVethRoute } from "./veth-route/plan.js";

// A VM on the fake kernel: an uplink eth0 with the VM's address, a default route, a hot-plugged NIC
// ens4, and an empty pod namespace.
async function vm(): Promise<{ k: FakeKernel; pod: string }> {
  const k = new FakeKernel();
  const wire = await k.createNetns("wire");
  await k.createVeth(HOST, {
    name: "eth0",
    mac: "02:00:00:00:00:0b",
    mtu: 1450,
    peer: { name: "tap-vm", netns: wire },
  });
  await k.createVeth(HOST, {
    name: "ens4",
    mac: "fa:16:3e:00:00:04",
    mtu: 1450,
    peer: { name: "tap-nic", netns: wire },
  });
  await k.setLink(HOST, "eth0", { up: true });
  await k.addAddress(HOST, { cidr: "10.0.0.11/24", dev: "eth0" });
  await k.addRoute(HOST, { dst: "0.0.0.0/0", gw: "10.0.0.1", dev: "eth0" });
  return { k, pod: await k.createNetns("pod") };
}

const plans: Record<string, (pod: string) => AttachmentPlan> = {
  "veth-route": (pod) =>
    planVethRoute({
      hostVeth: "tcnpaaaa",
      hostMac: "02:00:00:00:00:01",
      podNetns: pod,
      podIfname: "eth0",
      podMac: "0a:58:0a:00:00:39",
      podIp: "10.0.0.57",
      mtu: 1450,
      uplink: "eth0",
      routes: ["0.0.0.0/0"],
      holder: "proxy-arp",
    }),
  "host-device": (pod) =>
    planHostDevice({
      device: "ens4",
      mac: "fa:16:3e:00:00:04",
      linkMtu: 1450,
      tempName: "tcnptmp0",
      podNetns: pod,
      podIfname: "eth0",
      ips: [{ address: "10.0.1.23/24", gateway: "10.0.1.1" }],
      routes: [{ dst: "0.0.0.0/0" }],
    }),
  "veth-host": (pod) =>
    planVethHost(
      {
        hostVeth: "tcnpbbbb",
        hostMac: "02:00:00:00:00:02",
        podNetns: pod,
        podVeth: "veth0",
        podVethMac: "02:00:00:00:00:03",
        podIp: "10.0.1.23",
        hostIp: "10.0.0.11",
        hostInterface: "eth0",
        serviceCidr: "10.96.0.0/12",
        mtu: 1450,
        ipMasq: true,
        chain: "TCNP-0123456789ABCDEF",
        comment: "tcnp pod",
      },
      { interfaces: [], ips: [{ address: "10.0.1.23/24" }], routes: [] },
    ),
};

for (const [name, make] of Object.entries(plans)) {
  test(`${name}: the applied plan meets its own expectations, and its teardown removes what it made`, async () => {
    const { k, pod } = await vm();
    const plan = make(pod);
    const before = JSON.stringify([
      await k.listLinks(HOST),
      await k.listRoutes(HOST, "all"),
      await k.listNeighbours(HOST, { proxy: true }),
      await k.listIptables(HOST, "nat"),
    ]);
    await applyPlan(k, plan.steps);
    assert.deepEqual(await checkRecord(k, plan), []);
    await k.deleteNetns("pod");
    assert.deepEqual(await runTeardown(k, plan.teardown), []);
    const after = JSON.stringify([
      await k.listLinks(HOST),
      await k.listRoutes(HOST, "all"),
      await k.listNeighbours(HOST, { proxy: true }),
      await k.listIptables(HOST, "nat"),
    ]);
    if (name !== "host-device") assert.equal(after, before, "the VM is as it was");
  });

  // A runtime may ADD into the same namespace again after a DEL (a retried sandbox, a killed ADD and
  // its DEL): nothing the teardown left in the pod's namespace may refuse the new attachment.
  test(`${name}: after its teardown, the pod's namespace kept, the same plan applies again`, async () => {
    const { k, pod } = await vm();
    await applyPlan(k, make(pod).steps);
    assert.deepEqual(await runTeardown(k, make(pod).teardown), []);
    await applyPlan(k, make(pod).steps);
    assert.deepEqual(await checkRecord(k, make(pod)), []);
  });

  // One value drives ADD, CHECK and the doctor: a step dropped from the plan is caught by CHECK (or
  // makes ADD fail), so the plan and its expectations cannot drift apart unnoticed.
  test(`${name}: every step that leaves state is expected (dropping it makes ADD fail or CHECK find it)`, async () => {
    const steps = make("x").steps;
    for (let i = 0; i < steps.length; i++) {
      if (steps[i]!.op === "announce") continue;
      const { k, pod } = await vm();
      const plan = make(pod);
      const dropped = plan.steps[i]!;
      let failed = false;
      try {
        await applyPlan(k, plan.steps.slice(0, i));
        // A sysctl that happens to hold the planned value already is no step's effect: start from the opposite.
        if (dropped.op === "writeSysctl") k.writeSysctl(dropped.ns, dropped.key, dropped.value === "1" ? "0" : "1");
        await applyPlan(k, plan.steps.slice(i + 1));
      } catch {
        failed = true;
      }
      if (failed) continue;
      const findings = await checkRecord(k, plan);
      assert.ok(findings.length > 0, `${name}: dropping step ${i} (${JSON.stringify(dropped)}) went unnoticed`);
    }
  });
}
