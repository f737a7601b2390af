// The route controller against the emulator: desired routes from Neutron, ownership, the route
// limit (both error forms, learnt or configured), per-node blocks, concurrent writers, both apply
// paths, and how many API calls a reconcile costs.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  clusterTag,
  containerTag,
  ENI_POOL_NAME,
  ENI_TAG,
  eniPoolDescription,
  ifnameTag,
  nodeTag,
} from "../../src/ipam/tags.js";
import { NET, ROUTER, routeWorld } from "../helpers/route-world.js";

const routesOf = (w: Awaited<ReturnType<typeof routeWorld>>): string[] =>
  w.em.world.routers[ROUTER]!.routes.map((r) => `${r.destination} ${r.nexthop}`).sort();
const FOREIGN = { destination: "192.0.2.0/24", nexthop: "10.10.10.11" };

describe("vrouter-route-controller (emulator)", () => {
  for (const apply of ["atomic", "put"] as const) {
    it(`routes every pod via its VM, removes the route when the pod goes, keeps foreign routes (${apply})`, async () => {
      const w = await routeWorld({ vms: 2, config: { extraRouteAtomic: apply === "atomic" } });
      await w.c.neutron.setRoutes(ROUTER, [FOREIGN]);
      const a = await w.addPods(0, 2);
      const b = await w.addPods(1, 1);
      const { r } = w.controller({ aggregate: false });
      const res = await r.reconcile();
      assert.equal(res.mode, apply);
      assert.deepEqual(
        routesOf(w),
        [...a.map((ip) => `${ip}/32 10.10.10.11`), `${b[0]}/32 10.10.10.12`, "192.0.2.0/24 10.10.10.11"].sort(),
      );
      await w.removePod(0, a[0]!);
      const res2 = await r.reconcile();
      assert.deepEqual([res2.added, res2.removed], [0, 1]);
      assert.ok(!routesOf(w).includes(`${a[0]}/32 10.10.10.11`));
      assert.ok(routesOf(w).includes("192.0.2.0/24 10.10.10.11"), "the foreign route survives");
      const res3 = await r.reconcile();
      assert.deepEqual([res3.added, res3.removed], [0, 0], "nothing to do: nothing done");
    });
  }

  // Real Neutron's If-Match is no compare-and-swap: two PUTs with one revision can both "win". Here
  // another writer's PUT lands right after ours and undoes it; the reconcile reads back and goes again.
  it("the PUT path reads the router back and puts its routes again when a concurrent update undid them", async () => {
    const w = await routeWorld({ vms: 1, config: { extraRouteAtomic: false } });
    const pods = await w.addPods(0, 2);
    let undone = 0;
    const fetch: typeof w.em.fetch = async (req) => {
      const res = await w.em.fetch(req);
      if (req.method === "PUT" && req.url.includes(`/routers/${ROUTER}`) && undone === 0) {
        undone++;
        w.em.world.routers[ROUTER]!.routes = [FOREIGN];
      }
      return res;
    };
    const { r } = w.controller({ aggregate: false }, { fetch });
    const res = await r.reconcile();
    assert.equal(undone, 1, "the concurrent writer struck once");
    assert.equal(res.mode, "put");
    assert.deepEqual(
      routesOf(w),
      [...pods.map((ip) => `${ip}/32 10.10.10.11`), "192.0.2.0/24 10.10.10.11"].sort(),
      "every pod is routed when reconcile returns",
    );
  });

  for (const mode of ["RoutesExhausted", "OverQuota"] as const) {
    it(`at the limit of 30 with 60 pods on 3 VMs: the pods beyond it are reported, nothing flaps over 10 reconciles (limit learnt from ${mode})`, async () => {
      const w = await routeWorld({ vms: 3, config: { routeLimit: 30, routeLimitMode: mode } });
      await w.c.neutron.setRoutes(ROUTER, [FOREIGN]);
      const pods = [...(await w.addPods(0, 20)), ...(await w.addPods(1, 20)), ...(await w.addPods(2, 20))];
      const logs: string[] = [];
      const { r, metrics } = w.controller({ aggregate: false }, { logLines: logs });
      const first = await r.reconcile();
      assert.equal(r.limit, 30, "learnt from the refusal (OverQuota: by halving batches)");
      assert.equal(first.installed, 29, "30 minus one foreign route");
      assert.equal(first.missing.length, 31);
      assert.equal(metrics.get("tcnp_pods_without_route"), 31);
      const routed = new Set(routesOf(w).map((x) => x.split("/")[0]));
      assert.deepEqual(
        first.missing.filter((ip) => routed.has(ip)),
        [],
        "exactly the pods without a route are reported",
      );
      assert.equal(pods.filter((ip) => !routed.has(ip)).length, 31);
      assert.ok(logs.some((l) => l.includes("pods without a router route")));
      const snapshot = routesOf(w);
      for (let i = 0; i < 10; i++) {
        const res = await r.reconcile();
        assert.deepEqual([res.added, res.removed], [0, 0], `reconcile ${i} changed routes`);
        assert.deepEqual(res.missing, first.missing);
      }
      assert.deepEqual(routesOf(w), snapshot);
      assert.ok(routesOf(w).includes("192.0.2.0/24 10.10.10.11"));
    });
  }

  it("with per-node blocks, 60 pods on 3 VMs need at most 3 routes", async () => {
    const w = await routeWorld({ vms: 3, config: { routeLimit: 30 } });
    const pods = [
      ...(await w.addPods(0, 20, { blocks: 27 })),
      ...(await w.addPods(1, 20, { blocks: 27 })),
      ...(await w.addPods(2, 20, { blocks: 27 })),
    ];
    assert.equal(new Set(pods).size, 60);
    const { r } = w.controller({ routeLimit: 30 });
    const res = await r.reconcile();
    assert.ok(res.installed <= 3, `${res.installed} routes`);
    assert.deepEqual(res.missing, []);
    assert.ok(routesOf(w).every((x) => x.includes("/27 ")));
  });

  // The reservation's create commits but its answer is lost: the port has no tags. The next ADD on
  // that node adopts it (its name and description say whose it is) instead of leaving the block
  // taken by nobody forever.
  it("a block reservation whose create answer was lost is adopted by its node, not leaked", async () => {
    const w = await routeWorld({ vms: 2 });
    w.em.addFault({
      kind: "drop-after-commit",
      service: "network",
      method: "POST",
      path: "^/v2.0/ports$",
      remaining: 1,
    });
    await assert.rejects(w.addPods(0, 1, { blocks: 28 }), "the ADD whose reservation answer was lost fails");
    const pods = await w.addPods(0, 3, { blocks: 28 });
    const reservations = Object.values(w.em.world.ports).filter((p) => p.name.startsWith("tcnp-block-"));
    assert.deepEqual(
      reservations.map((p) => `${p.name} ${[...p.tags].sort().join(",")}`),
      [
        `tcnp-block-10.10.10.16/28 tcnp-block,tcnp-block=10.10.10.16/28,tcnp-cluster=default,tcnp-node=${Object.values(w.em.world.ports).find((x) => x.fixed_ips.some((f) => f.ip_address === "10.10.10.11"))!.device_id}`,
      ],
      "one reservation, tagged for its node and cluster",
    );
    for (const ip of pods) assert.match(ip, /^10\.10\.10\.(1[6-9]|2\d|3[01])$/, `${ip} comes from the adopted block`);
  });

  it("releases the block reservations of a server that is gone, and no other node's", async () => {
    const w = await routeWorld({ vms: 2 });
    await w.addPods(0, 2, { blocks: 28 });
    await w.addPods(1, 2, { blocks: 28 });
    const blocks = (): string[] =>
      Object.values(w.em.world.ports)
        .filter((p) => p.name.startsWith("tcnp-block-"))
        .map((p) => p.name)
        .sort();
    assert.equal(blocks().length, 2);
    const gone = w.vms[0]!.serverId;
    const blockOfServer = (id: string): string =>
      Object.values(w.em.world.ports).find(
        (p) => p.name.startsWith("tcnp-block-") && p.tags.includes(`tcnp-node=${id}`),
      )!.name;
    const mine = blockOfServer(gone);
    // The VM is deleted (its port and its pods' addresses go with it).
    await w.c.nova.deleteServer(gone);
    await w.em.settle();
    const { r } = w.controller();
    await r.reconcile();
    assert.deepEqual(blocks(), [blockOfServer(w.vms[1]!.serverId)], `${mine} is released, the other node's kept`);
  });

  it("a server gone: its eni ports, pool ports, blocks and routes are released in one reconcile; nothing else", async () => {
    const w = await routeWorld({ vms: 2 });
    const [gone, kept] = [w.vms[0]!.serverId, w.vms[1]!.serverId];
    const podsGone = await w.addPods(0, 2);
    const podsKept = await w.addPods(1, 2);
    const subnet = Object.values(w.em.world.subnets)[0]!.id;
    const mk = async (name: string, tags: string[], description = ""): Promise<string> => {
      const p = await w.c.neutron.createPort({
        network_id: NET,
        name,
        description,
        fixed_ips: [{ subnet_id: subnet }],
      });
      if (tags.length > 0) await w.c.neutron.setTags("ports", p.id, tags);
      return p.id;
    };
    const eniGone = await mk("pod", ["tcnp", ENI_TAG, containerTag("c1"), ifnameTag("eth0"), nodeTag(gone)]);
    // A pool port whose tags were never written (its create answer was lost): found by its name.
    const poolGone = await mk(ENI_POOL_NAME, [], eniPoolDescription(gone));
    const eniKept = await mk("pod", ["tcnp", ENI_TAG, containerTag("c2"), ifnameTag("eth0"), nodeTag(kept)]);
    const foreign = await mk("someone-elses", ["app=db", nodeTag(gone).replace("tcnp-", "other-")]);
    const { r } = w.controller({ aggregate: false });
    await r.reconcile();
    const routes = (): string[] => w.em.world.routers[ROUTER]!.routes.map((x) => x.destination).sort();
    assert.deepEqual(routes(), [...podsGone, ...podsKept].map((ip) => `${ip}/32`).sort());

    await w.c.nova.deleteServer(gone);
    await w.em.settle();
    const { r: r2 } = w.controller({ aggregate: false });
    await r2.reconcile();
    const ports = new Set(Object.keys(w.em.world.ports));
    assert.ok(!ports.has(eniGone), "the gone server's eni port is deleted");
    assert.ok(!ports.has(poolGone), "the gone server's untagged pool port is deleted");
    assert.ok(ports.has(eniKept), "the other node's eni port is kept");
    assert.ok(ports.has(foreign), "a port tcnp did not make is never touched");
    assert.deepEqual(routes(), podsKept.map((ip) => `${ip}/32`).sort(), "only the live node's pods keep routes");
    // The gone VM's port (not Nova's to delete: unbound) keeps its own address, not its pods', and no tcnp tag.
    const vmPort = w.em.world.ports[w.vms[0]!.portId]!;
    assert.equal(vmPort.device_id, "");
    assert.deepEqual(
      vmPort.fixed_ips.map((f) => f.ip_address),
      [w.vms[0]!.nodeIp],
    );
    assert.deepEqual(
      vmPort.tags.filter((t) => t.startsWith("tcnp")),
      [],
    );
  });

  // Issue 21 item 3: two clusters share a project, network and router; each controller touches only
  // its own cluster's objects and routes, also when the other cluster's server goes.
  it("two clusters on one router: each keeps the other's routes and ports, and cleans up only its own gone server", async () => {
    const w = await routeWorld({ vms: 2 });
    const podsA = await w.addPods(0, 2, { cluster: "a" });
    const podsB = await w.addPods(1, 2, { cluster: "b" });
    const subnet = Object.values(w.em.world.subnets)[0]!.id;
    const serverB = w.vms[1]!.serverId;
    const eniB = await w.c.neutron.createPort({ network_id: NET, name: "pod", fixed_ips: [{ subnet_id: subnet }] });
    await w.c.neutron.setTags("ports", eniB.id, [
      "tcnp",
      ENI_TAG,
      containerTag("cb"),
      ifnameTag("eth0"),
      nodeTag(serverB),
      clusterTag("b"),
    ]);
    const a = w.controller({ aggregate: false, cluster: "a" });
    const b = w.controller({ aggregate: false, cluster: "b" });
    const routes = (): string[] => w.em.world.routers[ROUTER]!.routes.map((x) => x.destination).sort();
    const all = [...podsA, ...podsB].map((ip) => `${ip}/32`).sort();
    for (const c of [a, b, a, b]) await c.r.reconcile();
    assert.deepEqual(routes(), all, "each cluster's routes, side by side");
    await w.c.nova.deleteServer(serverB);
    await w.em.settle();
    await a.r.reconcile();
    assert.ok(w.em.world.ports[eniB.id] !== undefined, "cluster a leaves cluster b's port of a gone server");
    assert.deepEqual(routes(), all, "and its routes");
    await b.r.reconcile();
    assert.equal(w.em.world.ports[eniB.id], undefined, "cluster b releases its own gone server's port");
    assert.deepEqual(routes(), podsA.map((ip) => `${ip}/32`).sort(), "and its routes; cluster a's stay");
    await a.r.reconcile();
    assert.deepEqual(routes(), podsA.map((ip) => `${ip}/32`).sort());
  });

  it("does not lose routes to a concurrent writer on the PUT path (If-Match, re-read on 412)", async () => {
    const w = await routeWorld({ vms: 2, config: { extraRouteAtomic: false } });
    const pods = await w.addPods(0, 5);
    const { r } = w.controller({ aggregate: false, apply: "put" });
    w.em.addFault({ kind: "stale-revision", service: "network", method: "PUT", path: "^/v2.0/routers/", remaining: 2 });
    const foreignWriter = async (i: number): Promise<void> => {
      for (;;) {
        const cur = await w.c.neutron.getRouter(ROUTER);
        try {
          await w.c.neutron.setRoutes(
            ROUTER,
            [...cur.routes, { destination: `198.51.100.${i}/32`, nexthop: "10.10.10.12" }],
            cur.revision_number,
          );
          return;
        } catch {
          // 412: someone else wrote first; read again
        }
      }
    };
    await Promise.all([r.reconcile(), foreignWriter(1), foreignWriter(2), foreignWriter(3)]);
    await r.reconcile();
    const got = routesOf(w);
    for (const ip of pods) assert.ok(got.includes(`${ip}/32 10.10.10.11`), `${ip} lost`);
    for (const i of [1, 2, 3]) assert.ok(got.includes(`198.51.100.${i}/32 10.10.10.12`), `foreign route ${i} lost`);
  });

  it("makes API calls proportional to changes: 500 pods, then one change", async () => {
    const w = await routeWorld({ vms: 3, cidr: "10.40.0.0/22", config: { routeLimit: 1000 } });
    await w.addPods(0, 170);
    await w.addPods(1, 165);
    const last = await w.addPods(2, 165);
    const { r } = w.controller({ aggregate: false, routeLimit: 1000 });
    const first = await r.reconcile();
    assert.equal(first.installed, 500);
    await w.removePod(2, last[0]!);
    const res = await r.reconcile();
    assert.deepEqual([res.added, res.removed], [0, 1]);
    assert.ok(res.apiCalls <= 4, `${res.apiCalls} calls`);
    process.stdout.write(
      `# API calls: first reconcile of 500 pods ${first.apiCalls} (incl. extension and subnet discovery), reconcile after one change ${res.apiCalls}\n`,
    );
  });
});
