// Behaviour of the embedded OpenStack beyond the shared contract: faults, both route-limit forms,
// the atomic-routes extension switch, policy, metadata, seeds, persistence and data-path hooks.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { kernelDataPath } from "../../src/cloud/datapath.js";
import { Emulator } from "../../src/cloud/emulator.js";
import { applySeed, DEFAULT_ADMIN, type Seed } from "../../src/cloud/seed.js";
import { serve } from "../../src/cloud/serve.js";
import { FakeKernel } from "../../src/kernel/fake-kernel.js";
import { createClients } from "../../src/openstack/clients.js";
import { isOpenStackError, type OpenStackError } from "../../src/openstack/errors.js";
import { NetworkError } from "../../src/openstack/http.js";
import type { AuthConfig } from "../../src/openstack/keystone.js";
import { instanceUuidFromMetadata } from "../../src/openstack/metadata.js";
import { nodeFetch } from "../../src/openstack/node-fetch.js";
import { systemClock } from "../../src/base/clock.js";
import { toCniError } from "../../src/plugins/errors.js";

const ADMIN: AuthConfig = {
  authUrl: "http://cloud.test/v3",
  username: DEFAULT_ADMIN.user,
  password: DEFAULT_ADMIN.password,
  projectName: "admin",
  userDomainName: "Default",
  projectDomainName: "Default",
  interface: "public",
};
const NET = "73fe8ad8-eda8-4ee0-9d10-ffca11752362";
const SEED: Seed = {
  networks: [
    {
      id: NET,
      name: "pods",
      subnets: [{ id: "11111111-1111-4111-8111-111111111111", name: "pods-v4", cidr: "10.10.20.0/24" }],
    },
  ],
  routers: [{ id: "22222222-2222-4222-8222-222222222222", name: "r1", interfaces: ["pods-v4"] }],
  servers: [
    {
      id: "33333333-3333-4333-8333-333333333333",
      name: "vm1",
      ports: [{ network: "pods", ip: "10.10.20.11", mac: "fa:16:3e:00:00:11" }],
    },
  ],
};

function cloud(config = {}, seed: Seed = SEED): { em: Emulator; c: ReturnType<typeof createClients> } {
  const em = new Emulator({ config: { detachDelayMs: 5, ...config } });
  applySeed(em, seed);
  return { em, c: createClients({ auth: ADMIN, fetch: em.fetch, clock: systemClock, retries: 0 }) };
}
const vmPort = (em: Emulator) =>
  Object.values(em.world.ports).find((p) => p.device_id === "33333333-3333-4333-8333-333333333333")!;

describe("embedded OpenStack", () => {
  it("starts with the documented admin and seeds networks with the given IDs", async () => {
    const { c } = cloud();
    const net = await c.neutron.getNetwork(NET);
    assert.equal(net.name, "pods");
    const p = (await c.neutron.listPorts({ device_id: "33333333-3333-4333-8333-333333333333" }))[0]!;
    assert.equal(p.mac_address, "fa:16:3e:00:00:11");
    assert.equal(p.device_owner, "compute:nova");
  });

  it("injects 5xx errors per route, and can drop connections before or after committing", async () => {
    const { em, c } = cloud();
    const port = vmPort(em);
    em.addFault({ kind: "error", service: "network", method: "PUT", path: "^/v2.0/ports/", status: 500, remaining: 1 });
    const e = await c.neutron.updatePort(port.id, { name: "x" }).catch((x: unknown) => x);
    assert.ok(isOpenStackError(e, "HTTPInternalServerError", 500));
    assert.equal(toCniError(e).code, 11);
    assert.equal((await c.neutron.updatePort(port.id, { name: "y" })).name, "y", "the fault retired after one use");
    em.addFault({ kind: "drop", service: "network", method: "PUT", remaining: 1 });
    assert.ok((await c.neutron.updatePort(port.id, { name: "z" }).catch((x: unknown) => x)) instanceof NetworkError);
    assert.equal(em.world.ports[port.id]!.name, "y", "dropped before processing: nothing changed");
    em.addFault({ kind: "drop-after-commit", service: "network", method: "PUT", remaining: 1 });
    assert.ok((await c.neutron.updatePort(port.id, { name: "w" }).catch((x: unknown) => x)) instanceof NetworkError);
    assert.equal(em.world.ports[port.id]!.name, "w", "dropped after processing: the change stuck");
  });

  it("makes 412 storms: another writer bumps the revision before each guarded write", async () => {
    const { em, c } = cloud();
    const port = vmPort(em);
    em.addFault({ kind: "stale-revision", service: "network", method: "PUT", remaining: 3 });
    let statuses = 0;
    for (;;) {
      const cur = await c.neutron.getPort(port.id);
      try {
        await c.neutron.updatePort(port.id, { name: "ok" }, cur.revision_number);
        break;
      } catch (e) {
        assert.ok(isOpenStackError(e, "RevisionNumberConstraintFailed", 412));
        statuses++;
      }
    }
    assert.equal(statuses, 3);
  });

  it("is a true compare-and-swap under concurrency (unlike real Neutron, research/realcloud.md §6.3)", async () => {
    const { em, c } = cloud();
    const port = vmPort(em);
    const rev = port.revision_number;
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        c.neutron.updateFixedIps(
          port.id,
          [...port.fixed_ips, { subnet_id: "11111111-1111-4111-8111-111111111111", ip_address: `10.10.20.${100 + i}` }],
          rev,
        ),
      ),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
  });

  it("reports the route limit either as 400 RoutesExhausted or as 409 OverQuota", async () => {
    for (const mode of ["RoutesExhausted", "OverQuota"] as const) {
      const { c } = cloud({ routeLimit: 2, routeLimitMode: mode });
      const rid = "22222222-2222-4222-8222-222222222222";
      await c.neutron.addExtraRoutes(rid, [
        { destination: "10.1.0.1/32", nexthop: "10.10.20.11" },
        { destination: "10.1.0.2/32", nexthop: "10.10.20.11" },
      ]);
      const e = await c.neutron
        .addExtraRoutes(rid, [{ destination: "10.1.0.3/32", nexthop: "10.10.20.11" }])
        .catch((x: unknown) => x);
      if (mode === "RoutesExhausted") {
        assert.ok(isOpenStackError(e, "RoutesExhausted", 400));
        assert.equal(
          (e as OpenStackError).detail,
          `Unable to complete operation for ${rid}. The number of routes exceeds the maximum 2.`,
        );
      } else {
        assert.ok(isOpenStackError(e, "OverQuota", 409));
        assert.equal((e as OpenStackError).detail, "Quota exceeded for resources: ['router_route'].");
      }
    }
  });

  it("switches the extraroute-atomic extension off (an older OVN cloud)", async () => {
    const { c } = cloud({ extraRouteAtomic: false });
    assert.equal((await c.neutron.extensions()).has("extraroute-atomic"), false);
    const e = await c.neutron
      .addExtraRoutes("22222222-2222-4222-8222-222222222222", [{ destination: "10.1.0.1/32", nexthop: "10.10.20.11" }])
      .catch((x: unknown) => x);
    assert.ok(isOpenStackError(e, "HTTPNotFound", 404));
  });

  it("answers 403 when a tenant adds fixed IPs to its port on someone else's shared network", async () => {
    const { em, c } = cloud(
      {},
      {
        ...SEED,
        projects: [{ name: "tenant" }],
        users: [{ name: "alice", password: "pw", project: "tenant", roles: ["member"] }],
        networks: [{ id: NET, name: "pods", shared: true, subnets: [{ name: "pods-v4", cidr: "10.10.20.0/24" }] }],
        routers: [],
        servers: [],
      },
    );
    void em;
    const alice = createClients({
      auth: { ...ADMIN, username: "alice", password: "pw", projectName: "tenant" },
      fetch: em.fetch,
      clock: systemClock,
    });
    const p = await alice.neutron.createPort({ network_id: NET });
    const e = await alice.neutron
      .updateFixedIps(p.id, [...p.fixed_ips, { subnet_id: p.fixed_ips[0]!.subnet_id }])
      .catch((x: unknown) => x);
    assert.ok(isOpenStackError(e, "PolicyNotAuthorized", 403));
    assert.equal(
      (e as OpenStackError).detail,
      "(rule:update_port and rule:update_port:fixed_ips) is disallowed by policy",
    );
    assert.equal(toCniError(e).code, 103);
    void c;
  });

  it("expires tokens on demand; the client renews once", async () => {
    const { em, c } = cloud();
    await c.neutron.listNetworks();
    em.expireTokens();
    const before = c.session.calls.identity;
    await c.neutron.listNetworks();
    assert.equal(c.session.calls.identity, before + 1);
  });

  it("drops tags in a port POST like Zed, unless tag-on-create is switched on", async () => {
    for (const on of [false, true]) {
      const { c } = cloud({ tagsOnCreate: on });
      const p = await c.neutron.createPort({ network_id: NET, tags: ["a"] });
      assert.deepEqual(p.tags, on ? ["a"] : []);
      assert.equal((await c.neutron.extensions()).has("tag-ports-during-bulk-creation"), on);
    }
  });

  it("serves the metadata document to the VM that asks, by its source address", async () => {
    const { em } = cloud();
    const asVm = (remote: string) => (req: Parameters<typeof em.fetch>[0]) =>
      em.fetch({ ...req, remoteAddress: remote });
    assert.equal(
      await instanceUuidFromMetadata(asVm("10.10.20.11"), "http://169.254.169.254"),
      "33333333-3333-4333-8333-333333333333",
    );
    assert.equal(await instanceUuidFromMetadata(asVm("10.10.20.99"), "http://169.254.169.254"), undefined);
  });

  it("persists its world to a state file that a new emulator can load", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-cloud-"));
    try {
      const file = path.join(dir, "state.json");
      const em = new Emulator({ stateFile: file });
      applySeed(em, SEED);
      const c = createClients({ auth: ADMIN, fetch: em.fetch, clock: systemClock });
      const p = await c.neutron.createPort({ network_id: NET, name: "kept" });
      const saved = JSON.parse(fs.readFileSync(file, "utf8")) as { world: Emulator["world"] };
      assert.equal(saved.world.ports[p.id]?.name, "kept");
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("hot-plugs a NIC with the port's MAC into the VM's namespace, unplugs it, and applies router routes", async () => {
    const kernel = new FakeKernel();
    const vmNs = await kernel.createNetns("vm1");
    const netNs = await kernel.createNetns("net");
    const rNs = await kernel.createNetns("router");
    await kernel.createLink(netNs, { name: "br-pods", kind: "bridge" });
    await kernel.createVeth(rNs, { name: "qr", peer: { name: "qr-br", netns: netNs } });
    await kernel.setLink(rNs, "qr", { up: true });
    await kernel.addAddress(rNs, { cidr: "10.10.20.1/24", dev: "qr" });
    const { em, c } = cloud();
    em.hooks = kernelDataPath(em, kernel, {
      servers: { vm1: { netns: "vm1" } },
      networks: { pods: { netns: "net", bridge: "br-pods" } },
      routers: { r1: { netns: "router" } },
    });
    const p = await c.neutron.createPort({ network_id: NET });
    await c.nova.attachInterface("33333333-3333-4333-8333-333333333333", p.id);
    await em.settle();
    const nic = (await kernel.listLinks(vmNs)).find((l) => l.mac === p.mac_address);
    assert.equal(nic?.name, "ens4");
    await c.nova.detachInterface("33333333-3333-4333-8333-333333333333", p.id);
    assert.equal(
      (await c.neutron.getPort(p.id)).device_id,
      "33333333-3333-4333-8333-333333333333",
      "a detach is asynchronous",
    );
    await em.settle();
    assert.equal(
      (await kernel.listLinks(vmNs)).some((l) => l.mac === p.mac_address),
      false,
    );
    assert.equal((await c.neutron.getPort(p.id)).device_id, "");
    await c.neutron.addExtraRoutes("22222222-2222-4222-8222-222222222222", [
      { destination: "10.99.0.5/32", nexthop: "10.10.20.11" },
    ]);
    assert.deepEqual(
      (await kernel.listRoutes(rNs)).filter((r) => r.gw !== undefined).map((r) => [r.dst, r.gw]),
      [["10.99.0.5/32", "10.10.20.11"]],
    );
    await c.neutron.removeExtraRoutes("22222222-2222-4222-8222-222222222222", [
      { destination: "10.99.0.5/32", nexthop: "10.10.20.11" },
    ]);
    assert.deepEqual(
      (await kernel.listRoutes(rNs)).filter((r) => r.gw !== undefined),
      [],
    );
  });

  it("can be told that an attached NIC never appears in the guest", async () => {
    const kernel = new FakeKernel();
    const vmNs = await kernel.createNetns("vm1");
    const netNs = await kernel.createNetns("net");
    await kernel.createLink(netNs, { name: "br-pods", kind: "bridge" });
    const { em, c } = cloud();
    em.hooks = kernelDataPath(em, kernel, {
      servers: { vm1: { netns: "vm1" } },
      networks: { pods: { netns: "net", bridge: "br-pods" } },
    });
    em.addFault({ kind: "no-nic", remaining: 1 });
    const p = await c.neutron.createPort({ network_id: NET });
    await c.nova.attachInterface("33333333-3333-4333-8333-333333333333", p.id);
    await em.settle();
    assert.equal(
      (await kernel.listLinks(vmNs)).some((l) => l.mac === p.mac_address),
      false,
    );
  });

  it("serves the same handler on a TCP socket; a drop fault closes the connection", async () => {
    const em = new Emulator();
    applySeed(em, SEED);
    const s = await serve(em, ["127.0.0.1:0"]);
    try {
      const fetch = nodeFetch();
      const c = createClients({
        auth: { ...ADMIN, authUrl: `http://${s.addresses[0]}/v3` },
        fetch,
        clock: systemClock,
        retries: 0,
      });
      assert.equal((await c.neutron.getNetwork(NET)).name, "pods");
      em.addFault({ kind: "drop", service: "network", remaining: 1 });
      const e = await c.neutron.getNetwork(NET).catch((x: unknown) => x);
      assert.ok(e instanceof NetworkError, String(e));
      assert.equal((await c.neutron.getNetwork(NET)).name, "pods");
    } finally {
      await s.close();
    }
  });
});
