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
import {
  containerTag,
  ENI_POOL_NAME,
  ENI_TAG,
  eniPoolDescription,
  ifnameTag,
  MIX_TAG,
  nodeIpTag,
  nodeTag,
} from "../../src/ipam/tags.js";
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

  // A reconciler on the real cloud; `on` another router and network than the suite's, and with Nova
  // (the check of the servers tcnp's ports name).
  const reconciler = (
    apply: "atomic" | "put" | "auto",
    on: { routerId: string; netId: string; nova?: boolean } = { routerId, netId },
  ): Reconciler => {
    const rc = realCloud();
    const clients = createClients({ auth: rc.auth, fetch: rc.fetch, clock: systemClock });
    const cfg: ControllerConfig = {
      credentials: { auth: rc.auth },
      cluster: "default",
      routerId: on.routerId,
      networks: [on.netId],
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
      ...(on.nova === true ? { nova: clients.nova } : {}),
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

  it("a server gone: the ports tcnp made for it are deleted, its VM port loses its pods' addresses and their routes; nothing else", async () => {
    const rc = realCloud();
    const local: Array<() => Promise<unknown>> = [];
    try {
      const net = await c.neutron.createNetwork({ name: "tcnp-rc-gone" });
      local.push(() => c.neutron.deleteNetwork(net.id));
      const sub = await c.neutron.createSubnet({ network_id: net.id, cidr: "10.234.0.0/24", ip_version: 4, name: "g" });
      const router = await c.neutron.createRouter({ name: "tcnp-rc-gone" });
      local.push(() => c.neutron.deleteRouter(router.id));
      await c.neutron.addRouterInterface(router.id, sub.id);
      local.push(() => c.neutron.removeRouterInterface(router.id, sub.id));
      local.push(() => c.neutron.setRoutes(router.id, []));
      const server = async (name: string, ip: string): Promise<{ id: string; port: string }> => {
        const port = await c.neutron.createPort({
          network_id: net.id,
          fixed_ips: [{ subnet_id: sub.id, ip_address: ip }],
        });
        local.push(() => c.neutron.deletePort(port.id));
        const s = await c.nova.createServer({
          name,
          imageRef: rc.image,
          flavorRef: rc.flavor,
          networks: [{ port: port.id }],
        });
        local.push(() => c.nova.deleteServer(s.id));
        for (let i = 0; i < 600 && (await c.nova.getServer(s.id)).status !== "ACTIVE"; i++)
          await new Promise((r) => setTimeout(r, 200));
        return { id: s.id, port: port.id };
      };
      const gone = await server("tcnp-gone-vm", "10.234.0.21");
      const live = await server("tcnp-live-vm", "10.234.0.22");
      // As tcnp-ipam leaves them: each VM port with a pod address, tagged; an eni port, an untagged
      // pool port (its create answer lost) of the server to go; an eni port of the other; a foreign port.
      for (const [vm, nodeIp, pod] of [
        [gone, "10.234.0.21", "10.234.0.121"],
        [live, "10.234.0.22", "10.234.0.122"],
      ] as const) {
        await c.neutron.updateFixedIps(vm.port, [
          { subnet_id: sub.id, ip_address: nodeIp },
          { subnet_id: sub.id, ip_address: pod },
        ]);
        await c.neutron.setTags("ports", vm.port, [MIX_TAG, nodeIpTag(nodeIp), nodeTag(vm.id)]);
      }
      const mk = async (body: Record<string, unknown>, tags: string[]): Promise<string> => {
        const p = await c.neutron.createPort({ network_id: net.id, fixed_ips: [{ subnet_id: sub.id }], ...body });
        local.push(() => c.neutron.deletePort(p.id));
        if (tags.length > 0) await c.neutron.setTags("ports", p.id, tags);
        return p.id;
      };
      const eniGone = await mk({ name: "pod" }, [
        "tcnp",
        ENI_TAG,
        containerTag("c1"),
        ifnameTag("eth0"),
        nodeTag(gone.id),
      ]);
      const poolGone = await mk({ name: ENI_POOL_NAME, description: eniPoolDescription(gone.id) }, []);
      const eniLive = await mk({ name: "pod" }, [
        "tcnp",
        ENI_TAG,
        containerTag("c2"),
        ifnameTag("eth0"),
        nodeTag(live.id),
      ]);
      const foreign = await mk({ name: "someone-elses", description: `on server ${gone.id}` }, ["app=db"]);

      const sweeper = (): Reconciler => reconciler("auto", { routerId: router.id, netId: net.id, nova: true });
      const routes = async (): Promise<string[]> =>
        (await c.neutron.getRouter(router.id)).routes.map((r) => r.destination).sort();
      await sweeper().reconcile();
      assert.deepEqual(await routes(), ["10.234.0.121/32", "10.234.0.122/32"]);

      await c.nova.deleteServer(gone.id);
      for (let i = 0; i < 600; i++) {
        const still = await c.nova.getServer(gone.id).then(
          () => true,
          () => false,
        );
        if (!still) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      await sweeper().reconcile();
      const exists = async (id: string): Promise<boolean> =>
        c.neutron.getPort(id).then(
          () => true,
          () => false,
        );
      assert.equal(await exists(eniGone), false, "the gone server's eni port is deleted");
      assert.equal(await exists(poolGone), false, "its untagged pool port is deleted (found by name and description)");
      assert.equal(await exists(eniLive), true, "the other server's eni port is kept");
      assert.equal(await exists(foreign), true, "a port tcnp did not make is not touched");
      const vmPort = await c.neutron.getPort(gone.port);
      assert.equal(vmPort.device_id, "", "the real Nova unbinds a port it did not make");
      assert.deepEqual(
        vmPort.fixed_ips.map((f) => f.ip_address),
        ["10.234.0.21"],
        "its pod address is released",
      );
      assert.deepEqual(
        vmPort.tags.filter((t) => t.startsWith("tcnp")),
        [],
      );
      assert.deepEqual(await routes(), ["10.234.0.122/32"], "only the live server's pod keeps its route");
    } finally {
      for (const f of local.reverse()) await f().catch(() => {});
    }
  });
});
