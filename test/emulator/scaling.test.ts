// The shipped scaling defaults against Neutron's route quota (issue 22 item 2): with the mix
// example's configuration, each node needs one router route however many pods (warm ones included)
// it runs up to its block's size, so 30 routes (Neutron's default max_routes) serve 30 nodes; the
// same load without per-node blocks leaves pods without a route on the tenth node.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseNetConf } from "../../src/cni/netconf.js";
import { parseIpamConfig } from "../../src/ipam/config.js";
import { repoRoot } from "../helpers/cni.js";
import { ROUTER, routeWorld } from "../helpers/route-world.js";

const EXAMPLE = path.join(repoRoot, "deploy", "kubernetes", "examples", "mix");

function shipped() {
  // The configuration tcnp-ipam gets: the list's version and name with its first plugin.
  const list = JSON.parse(fs.readFileSync(path.join(EXAMPLE, "10-tcnp.conflist"), "utf8")) as {
    cniVersion: string;
    name: string;
    plugins: object[];
  };
  const conf = parseNetConf(
    JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] }),
    "ADD",
  );
  return parseIpamConfig(conf, {
    env: {},
    exists: (f) => f === "/etc/tcnp/clouds.yaml",
    readFile: () => fs.readFileSync(path.join(EXAMPLE, "node-clouds.yaml"), "utf8"),
  });
}

describe("the shipped mix defaults and the router's route quota (emulator)", () => {
  it("one route per node: 12 nodes with a warm pool and pods use 12 routes, a node growing to its block's size adds none", async () => {
    const cfg = shipped();
    assert.equal(cfg.nodeBlockPrefix, 26);
    const perBlock = 2 ** (32 - cfg.nodeBlockPrefix!) - 1; // all but the reservation's own address
    // Room for 32 blocks of /26; nodes' own addresses sit in the first.
    const w = await routeWorld({ vms: 12, cidr: "10.20.0.0/21", config: { routeLimit: 30 } });
    const routes = (): string[] => w.em.world.routers[ROUTER]!.routes.map((r) => r.destination);
    for (let vm = 0; vm < 12; vm++) await w.addPods(vm, cfg.pool.warm + 3, { blocks: cfg.nodeBlockPrefix! });
    const { r } = w.controller({ routeLimit: 30 });
    const first = await r.reconcile();
    assert.deepEqual(first.missing, []);
    assert.equal(routes().length, 12, JSON.stringify(routes()));
    assert.ok(routes().every((d) => d.endsWith("/26")));
    // Node 1 fills its block: still one route for it.
    await w.addPods(0, perBlock - (cfg.pool.warm + 3), { blocks: cfg.nodeBlockPrefix! });
    assert.deepEqual((await r.reconcile()).missing, []);
    assert.equal(routes().length, 12);
    // One more pod takes a second block: a second route for that node.
    await w.addPods(0, 1, { blocks: cfg.nodeBlockPrefix! });
    assert.deepEqual((await r.reconcile()).missing, []);
    assert.equal(routes().length, 13);
  });

  it("the same load without per-node blocks: a route per address, and the quota runs out on the fourth node", async () => {
    const cfg = shipped();
    const w = await routeWorld({ vms: 4, cidr: "10.20.0.0/21", config: { routeLimit: 30 } });
    for (let vm = 0; vm < 4; vm++) await w.addPods(vm, cfg.pool.warm + 3);
    const { r } = w.controller({ routeLimit: 30, aggregate: true });
    const res = await r.reconcile();
    assert.equal(res.installed, 30);
    assert.equal(res.missing.length, 4 * (cfg.pool.warm + 3) - 30, "pods left without a route");
  });
});
