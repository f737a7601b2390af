import { test } from "node:test";
import assert from "node:assert/strict";
import type { Port } from "../openstack/types.js";
import { desiredRoutes, isOwned } from "./desired.js";
import { planRoutes } from "./plan.js";

const vm = (id: string, nodeIp: string, ips: string[]): Port => ({
  id: `port-${id}`,
  name: "",
  network_id: "n",
  mac_address: "fa:16:3e:00:00:01",
  status: "ACTIVE",
  device_id: id,
  device_owner: "compute:nova",
  fixed_ips: [nodeIp, ...ips].map((ip) => ({ subnet_id: "s", ip_address: ip })),
  revision_number: 1,
  tags: ["tcnp-mix", `tcnp-node-ip=${nodeIp}`],
});
const block = (server: string, cidr: string): Port => ({
  ...vm(`b-${cidr}`, "0.0.0.0", []),
  device_id: "",
  tags: ["tcnp-block", `tcnp-block=${cidr}`, `tcnp-node=${server}`],
});
const OPTS = { podCidrs: ["10.10.10.0/24"], nodeCidrs: ["10.10.10.0/24"] };

test("every pod address gets a /32 via its VM; the VM's own address does not", () => {
  const d = desiredRoutes({
    vmPorts: [vm("a", "10.10.10.11", ["10.10.10.50", "10.10.10.100"])],
    blockPorts: [],
    podCidrs: OPTS.podCidrs,
    aggregate: false,
  });
  assert.deepEqual(
    d.map((r) => `${r.destination} ${r.nexthop}`),
    ["10.10.10.50/32 10.10.10.11", "10.10.10.100/32 10.10.10.11"],
  );
});

test("an aligned block wholly held by one VM becomes one route; a per-node block is one route", () => {
  const four = ["10.10.10.64", "10.10.10.65", "10.10.10.66", "10.10.10.67"];
  const d = desiredRoutes({
    vmPorts: [
      vm("a", "10.10.10.11", [...four, "10.10.10.70"]),
      vm("b", "10.10.10.12", ["10.10.10.130", "10.10.10.131"]),
    ],
    blockPorts: [block("b", "10.10.10.128/27")],
    podCidrs: OPTS.podCidrs,
    aggregate: true,
  });
  assert.deepEqual(d.map((r) => `${r.destination} ${r.nexthop} ${r.pods.length}`).sort(), [
    "10.10.10.128/27 10.10.10.12 2",
    "10.10.10.64/30 10.10.10.11 4",
    "10.10.10.70/32 10.10.10.11 1",
  ]);
});

test("ownership: inside the pod CIDRs, next hop on a node subnet", () => {
  assert.ok(isOwned({ destination: "10.10.10.50/32", nexthop: "10.10.10.11" }, OPTS.podCidrs, OPTS.nodeCidrs));
  assert.ok(!isOwned({ destination: "192.0.2.0/24", nexthop: "10.10.10.11" }, OPTS.podCidrs, OPTS.nodeCidrs));
  assert.ok(!isOwned({ destination: "10.10.10.50/32", nexthop: "10.20.0.1" }, OPTS.podCidrs, OPTS.nodeCidrs));
});

test("the plan adds what is missing, removes what is not desired, and never touches foreign routes", () => {
  const desired = desiredRoutes({
    vmPorts: [vm("a", "10.10.10.11", ["10.10.10.50"])],
    blockPorts: [],
    podCidrs: OPTS.podCidrs,
    aggregate: false,
  });
  const current = [
    { destination: "10.10.10.99/32", nexthop: "10.10.10.11" },
    { destination: "192.0.2.0/24", nexthop: "10.10.10.11" },
  ];
  const p = planRoutes(current, desired, OPTS);
  assert.deepEqual(p.add, [{ destination: "10.10.10.50/32", nexthop: "10.10.10.11" }]);
  assert.deepEqual(p.remove, [{ destination: "10.10.10.99/32", nexthop: "10.10.10.11" }]);
  assert.equal(p.foreign, 1);
});

test("under the limit, installed routes stay, new ones fill the room in a stable order, the rest are reported", () => {
  const ips = Array.from({ length: 40 }, (_, i) => `10.10.10.${100 + i}`);
  const desired = desiredRoutes({
    vmPorts: [vm("a", "10.10.10.11", ips)],
    blockPorts: [],
    podCidrs: OPTS.podCidrs,
    aggregate: false,
  });
  const foreign = { destination: "192.0.2.0/24", nexthop: "10.10.10.11" };
  // Installed earlier: the last five pods (say they came first).
  const installed = ips.slice(35).map((ip) => ({ destination: `${ip}/32`, nexthop: "10.10.10.11" }));
  const p1 = planRoutes([foreign, ...installed], desired, { ...OPTS, limit: 30 });
  assert.equal(p1.remove.length, 0);
  assert.equal(p1.add.length, 24, "30 - 1 foreign - 5 kept");
  assert.deepEqual(
    p1.add.map((r) => r.destination),
    ips.slice(0, 24).map((ip) => `${ip}/32`),
  );
  assert.deepEqual(
    p1.unfit.flatMap((u) => u.pods),
    ips.slice(24, 35),
  );
  // Applied: the next plan changes nothing, and reports the same pods.
  const p2 = planRoutes([foreign, ...installed, ...p1.add], desired, { ...OPTS, limit: 30 });
  assert.deepEqual([p2.add, p2.remove], [[], []]);
  assert.deepEqual(
    p2.unfit.flatMap((u) => u.pods),
    ips.slice(24, 35),
  );
});
