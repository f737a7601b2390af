// The route controller against the real Neutron: both apply paths (atomic add/remove_extraroutes,
// and PUT with If-Match), foreign routes untouched, and the limit learnt from RoutesExhausted.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ControllerConfig } from "../../src/controller/config.js";
import { Metrics } from "../../src/controller/metrics.js";
import { Reconciler } from "../../src/controller/reconciler.js";
import { nullLogger } from "../../src/log/logger.js";
import { createClients, type Clients } from "../../src/openstack/clients.js";
import { systemClock } from "../../src/base/clock.js";
import { realCloud, realCloudSkipReason } from "../helpers/realcloud.js";

const skip = realCloudSkipReason();

describe("vrouter-route-controller against the real Neutron", { skip: skip ?? false }, () => {
  let c: Clients;
  const undo: Array<() => Promise<unknown>> = [];
  let routerId = "";
  let netId = "";
  let pods: string[] = [];
  before(async () => {
    const rc = realCloud();
    c = createClients({ auth: rc.auth, fetch: rc.fetch, clock: systemClock });
    const net = await c.neutron.createNetwork({ name: "tcnp-rc" });
    netId = net.id;
    undo.push(() => c.neutron.deleteNetwork(net.id));
    const sub = await c.neutron.createSubnet({
      network_id: net.id,
      cidr: "10.233.0.0/24",
      ip_version: 4,
      name: "tcnp-rc",
    });
    const r = await c.neutron.createRouter({ name: "tcnp-rc" });
    routerId = r.id;
    undo.push(() => c.neutron.deleteRouter(r.id));
    await c.neutron.addRouterInterface(r.id, sub.id);
    undo.push(() => c.neutron.removeRouterInterface(r.id, sub.id));
    undo.push(() => c.neutron.setRoutes(r.id, []));
    // A "VM" port as tcnp-ipam leaves it: its own address plus pod addresses, tagged.
    const ips = ["10.233.0.11", ...Array.from({ length: 34 }, (_, i) => `10.233.0.${100 + i}`)];
    const port = await c.neutron.createPort({
      network_id: net.id,
      fixed_ips: ips.map((ip) => ({ subnet_id: sub.id, ip_address: ip })),
    });
    undo.push(() => c.neutron.deletePort(port.id));
    await c.neutron.setTags("ports", port.id, ["tcnp-mix", "tcnp-node-ip=10.233.0.11"]);
    pods = ips.slice(1);
  });
  after(async () => {
    for (const f of undo.reverse()) await f().catch(() => {});
  });

  const reconciler = (apply: "atomic" | "put"): Reconciler => {
    const rc = realCloud();
    const clients = createClients({ auth: rc.auth, fetch: rc.fetch, clock: systemClock });
    const cfg: ControllerConfig = {
      credentials: { auth: rc.auth },
      routerId,
      networks: [netId],
      intervalMs: 1000,
      aggregate: false,
      apply,
      kubernetes: {
        enabled: false,
        leaseName: "l",
        leaseNamespace: "n",
        leaseDurationMs: 15000,
        renewMs: 5000,
        events: false,
        watchPods: false,
      },
    };
    return new Reconciler({
      cfg,
      neutron: clients.neutron,
      session: clients.session,
      log: nullLogger,
      clock: systemClock,
      metrics: new Metrics(),
    });
  };

  for (const apply of ["atomic", "put"] as const) {
    it(`installs routes up to the limit it learns, reports the rest, keeps foreign routes, and is stable (${apply})`, async () => {
      await c.neutron.setRoutes(routerId, [{ destination: "192.0.2.0/24", nexthop: "10.233.0.11" }]);
      const r = reconciler(apply);
      const first = await r.reconcile();
      assert.equal(r.limit, 30, "learnt from the real RoutesExhausted");
      assert.equal(first.installed, 29);
      assert.equal(first.missing.length, pods.length - 29);
      const routes = (await c.neutron.getRouter(routerId)).routes;
      assert.ok(routes.some((x) => x.destination === "192.0.2.0/24"));
      assert.equal(routes.length, 30);
      const again = await r.reconcile();
      assert.deepEqual([again.added, again.removed], [0, 0]);
      await c.neutron.setRoutes(routerId, []);
    });
  }
});
