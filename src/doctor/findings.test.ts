import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeKernel } from "../kernel/fake-kernel.js";
import { applyPlan } from "../kernel/plan.js";
import { emptySnapshot, snapshot } from "../kernel/snapshot.js";
import { HOST } from "../kernel/types.js";
import { snapshotNeeds } from "../plugins/expect.js";
import { planVethRoute } from "../plugins/veth-route/plan.js";
import { diagnose } from "./findings.js";
import type { Attachment } from "./locate.js";

const POD = "/var/run/netns/pod";
const attachment: Attachment = {
  containerId: "c0ffee",
  ifname: "eth0",
  network: "cni0",
  netns: POD,
  cniVersion: "0.3.1",
  cacheFile: "/x",
  plugins: [{ type: "veth-route", ipam: { type: "tcnp-ipam" } }],
  result: { interfaces: [], ips: [{ address: "10.0.0.57/32" }], routes: [] },
};
const plan = planVethRoute({
  hostVeth: "tcnpaaaa",
  hostMac: "02:00:00:00:00:01",
  podNetns: POD,
  podIfname: "eth0",
  podMac: "0a:58:0a:00:00:39",
  podIp: "10.0.0.57",
  mtu: 1500,
  routes: ["0.0.0.0/0"],
  holder: "proxy-arp",
  uplink: "eth0",
});

// The snapshots of a node where the plan ran, and then `damage` happened.
async function node(damage: (k: FakeKernel) => Promise<void>) {
  const k = new FakeKernel();
  k.addNetnsPath(POD);
  await k.createVeth(HOST, { name: "eth0", peer: { name: "tap", netns: await k.createNetns("wire") } });
  await applyPlan(k, plan.steps);
  await damage(k);
  return new Map([
    [POD, await snapshot(k, POD, snapshotNeeds(plan.expect, POD))],
    [HOST, await snapshot(k, HOST, snapshotNeeds(plan.expect, HOST))],
  ]);
}

test("a pod as planned has no findings", async () => {
  assert.deepEqual(
    diagnose(
      attachment,
      [{ type: "veth-route", file: "/r", expect: plan.expect }],
      await node(async () => {}),
      undefined,
    ),
    [],
  );
});

test("each fault is named by the expectation it breaks, with its consequence", async () => {
  const snaps = await node(async (k) => {
    await k.deleteRoute(HOST, { dst: "10.0.0.57/32", dev: "tcnpaaaa" });
    await k.deleteRoute(POD, { dst: "0.0.0.0/0", gw: "169.254.1.1", dev: "eth0" });
    k.writeSysctl(HOST, "net/ipv4/neigh/tcnpaaaa/proxy_delay", "80");
  });
  const f = diagnose(attachment, [{ type: "veth-route", file: "/r", expect: plan.expect }], snaps, undefined);
  assert.deepEqual(
    f.map((x) => `${x.severity} ${x.code}`),
    ["error host-route-missing", "warning gateway-proxy-delay-wrong", "error pod-default-route-missing"],
  );
  assert.match(
    f[0]!.message,
    /route 10\.0\.0\.57\/32 dev tcnpaaaa is missing on the host: nothing the VM forwards to the pod reaches it/,
  );
  assert.match(f[1]!.message, /it is 80, expected 0/);
});

test("a gone namespace, a lost record and Neutron's view are findings of their own", async () => {
  const snaps = new Map([
    [POD, emptySnapshot()],
    [HOST, emptySnapshot()],
  ]);
  const f = diagnose(attachment, [{ type: "veth-route", file: "/var/lib/tcnp/veth-route/c0ffee__eth0.json" }], snaps, {
    port: { id: "p1", ips: ["10.0.0.11"], mac: "fa:16:3e:00:00:01" },
  });
  assert.deepEqual(
    f.map((x) => `${x.severity} ${x.code}`),
    ["error pod-netns-missing", "warning record-missing", "error address-not-on-port"],
  );
});

// The faults a live node meets: another pod's repeated DEL took this pod's proxy entry (the same
// address, reused), and the VM's anti-spoofing on the pod's veth was turned off.
test("the doctor names a taken proxy entry and a disabled anti-spoofing filter", async () => {
  const snaps = await node(async (k) => {
    await k.deleteNeighbour(HOST, { dev: "eth0", ip: "10.0.0.57", proxy: true });
    k.writeSysctl(HOST, "net/ipv4/conf/tcnpaaaa/rp_filter", "0");
  });
  const f = diagnose(attachment, [{ type: "veth-route", file: "/r", expect: plan.expect }], snaps, undefined);
  assert.deepEqual(
    f.map((x) => `${x.severity} ${x.code}`),
    ["error anti-spoofing-wrong", "warning proxy-arp-missing"],
  );
  assert.match(f[0]!.message, /can send with another pod's address/);
});

// Each finding says what to do (issue 22 item 9): on the host the one command that restores the
// fact, in the pod recreating it, for Neutron's view what to look at.
test("each finding says what to do about it", async () => {
  const snaps = await node(async (k) => {
    await k.deleteRoute(HOST, { dst: "10.0.0.57/32", dev: "tcnpaaaa" });
    await k.deleteNeighbour(HOST, { dev: "eth0", ip: "10.0.0.57", proxy: true });
    await k.deleteRoute(POD, { dst: "0.0.0.0/0", gw: "169.254.1.1", dev: "eth0" });
    k.writeSysctl(HOST, "net/ipv4/neigh/tcnpaaaa/proxy_delay", "80");
  });
  const f = diagnose(attachment, [{ type: "veth-route", file: "/r", expect: plan.expect }], snaps, {
    port: { id: "p1", ips: ["10.0.0.11"], mac: "fa:16:3e:00:00:01" },
    nodeIp: "10.0.0.11",
    router: { id: "r1", name: "r1", routes: [], limit: 30 },
  });
  const fix = (code: string): string => f.find((x) => x.code === code)?.fix ?? `no finding ${code}`;
  assert.equal(
    fix("host-route-missing"),
    "On the node: ip route replace 10.0.0.57/32 dev tcnpaaaa. Or recreate the pod (kubectl delete pod …): its DEL and a new ADD rebuild what the plugins plan.",
  );
  assert.match(fix("proxy-arp-missing"), /^On the node: ip neigh add proxy 10\.0\.0\.57 dev eth0\. Or recreate/);
  assert.match(fix("gateway-proxy-delay-wrong"), /^On the node: sysctl -w net\/ipv4\/neigh\/tcnpaaaa\/proxy_delay=0 /);
  assert.match(fix("pod-default-route-missing"), /^Recreate the pod/);
  assert.match(fix("address-not-on-port"), /^Recreate the pod, and find what removed the address/);
  assert.match(fix("router-route-missing"), /vrouter-route-controller runs and leads/);
  for (const x of f) assert.ok(x.fix.length > 10, `${x.code} says what to do`);
});
