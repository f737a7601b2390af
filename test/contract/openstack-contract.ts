// One contract for both clouds tcnp talks to: the embedded emulator and a real Keystone + Neutron +
// Nova (fake driver) from Debian's packages. Every case asserts what tcnp relies on: status codes,
// Neutron's error `type`, the exact messages it reports, and the fields it reads.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { createClients, type Clients } from "../../src/openstack/clients.js";
import { isOpenStackError, OpenStackError } from "../../src/openstack/errors.js";
import type { HttpFetch } from "../../src/openstack/http.js";
import { authenticate, endpointFor, type AuthConfig } from "../../src/openstack/keystone.js";
import type { Port } from "../../src/openstack/types.js";
import { systemClock } from "../../src/base/clock.js";

export interface CloudTarget {
  name: string;
  fetch: HttpFetch;
  /** An admin in project "admin". */
  auth: AuthConfig;
  /** Extra fields for POST /servers (image, flavor) the real Nova needs. */
  serverExtras: Record<string, unknown>;
  /** The router limit configured on this cloud. */
  routeLimit: number;
  close?(): Promise<void>;
}

const expectError = async (
  p: Promise<unknown>,
  status: number,
  type: string,
  message?: string | RegExp,
): Promise<OpenStackError> => {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof OpenStackError, `expected an OpenStackError ${status} ${type}, got ${String(err)}`);
  assert.equal(err.status, status, err.message);
  assert.equal(err.type, type, err.message);
  if (typeof message === "string") assert.equal(err.detail, message);
  else if (message !== undefined) assert.match(err.detail, message);
  return err;
};

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function openstackContract(make: () => Promise<CloudTarget>, opts: { skip?: string } = {}): void {
  describe("OpenStack contract", { skip: opts.skip ?? false }, () => {
    let cloud: CloudTarget;
    let c: Clients;
    const cleanups: Array<() => Promise<void>> = [];
    const later = (f: () => Promise<unknown>): void => void cleanups.push(async () => void (await f().catch(() => {})));
    const tag = `tcnp-contract-${process.pid}-${Date.now() % 100000}`;

    before(async () => {
      cloud = await make();
      c = createClients({ auth: cloud.auth, fetch: cloud.fetch, clock: systemClock });
    });
    after(async () => {
      for (const f of cleanups.reverse()) await f();
      await cloud?.close?.();
    });

    async function network(
      cidr: string,
      pools?: Array<{ start: string; end: string }>,
    ): Promise<{ netId: string; subnetId: string }> {
      const net = await c.neutron.createNetwork({ name: `${tag}-net` });
      later(() => c.neutron.deleteNetwork(net.id));
      const body: Record<string, unknown> = { network_id: net.id, cidr, ip_version: 4, name: `${tag}-sub` };
      if (pools !== undefined) body["allocation_pools"] = pools;
      const sub = await c.neutron.createSubnet(body);
      return { netId: net.id, subnetId: sub.id };
    }

    async function port(netId: string, body: Record<string, unknown> = {}): Promise<Port> {
      const p = await c.neutron.createPort({ network_id: netId, name: `${tag}-port`, ...body });
      later(() => c.neutron.deletePort(p.id));
      return p;
    }

    it("authenticates with a password: 201, a token, a catalog with network and compute", async () => {
      const t = await authenticate(cloud.fetch, cloud.auth);
      assert.ok(t.id.length > 20);
      assert.ok(t.expiresAt > Date.now());
      assert.ok(t.projectId.length > 0);
      assert.match(endpointFor(t.catalog, "network", "public"), /^https?:\/\//);
      assert.match(endpointFor(t.catalog, "compute", "public"), /^https?:\/\//);
    });

    it("rejects a bad password with Keystone's generic 401", async () => {
      await expectError(
        authenticate(cloud.fetch, { ...cloud.auth, password: "wrong-password" }),
        401,
        "Unauthorized",
        "The request you have made requires authentication.",
      );
    });

    it("answers 401 for a revoked token; the session re-authenticates once and goes on", async () => {
      const t = await c.session.token();
      const base = endpointFor(t.catalog, "identity", "public").replace(/\/+$/, "");
      const del = await cloud.fetch({
        method: "DELETE",
        url: `${base}/auth/tokens`,
        headers: { "x-auth-token": t.id, "x-subject-token": t.id },
      });
      assert.equal(del.status, 204);
      const net = endpointFor(t.catalog, "network", "public");
      const raw = await cloud.fetch({ method: "GET", url: `${net}/v2.0/networks`, headers: { "x-auth-token": t.id } });
      assert.equal(raw.status, 401);
      assert.equal(JSON.parse(raw.body).error.title, "Unauthorized");
      const before = c.session.calls.identity;
      assert.ok(Array.isArray(await c.neutron.listNetworks()));
      assert.equal(c.session.calls.identity, before + 1, "exactly one re-authentication");
    });

    it("authenticates with an application credential, which may not ask for a scope", async () => {
      const t = await c.session.token();
      const base = endpointFor(t.catalog, "identity", "public").replace(/\/+$/, "");
      const res = await cloud.fetch({
        method: "POST",
        url: `${base}/users/${t.userId}/application_credentials`,
        headers: { "content-type": "application/json", "x-auth-token": t.id },
        body: JSON.stringify({ application_credential: { name: `${tag}-ac` } }),
      });
      assert.equal(res.status, 201, res.body);
      const ac = JSON.parse(res.body).application_credential as { id: string; secret: string };
      later(() =>
        cloud.fetch({
          method: "DELETE",
          url: `${base}/users/${t.userId}/application_credentials/${ac.id}`,
          headers: { "x-auth-token": t.id },
        }),
      );
      const tok = await authenticate(cloud.fetch, {
        authUrl: cloud.auth.authUrl,
        applicationCredentialId: ac.id,
        applicationCredentialSecret: ac.secret,
        interface: "public",
      });
      assert.equal(tok.projectId, t.projectId);
      await expectError(
        authenticate(cloud.fetch, {
          authUrl: cloud.auth.authUrl,
          applicationCredentialId: ac.id,
          applicationCredentialSecret: "nope",
          interface: "public",
        }),
        401,
        "Unauthorized",
      );
    });

    it("creates a port with a chosen fixed IP; a taken IP is 409 IpAddressAlreadyAllocated", async () => {
      const { netId, subnetId } = await network("10.231.1.0/24");
      const p = await port(netId, { fixed_ips: [{ subnet_id: subnetId, ip_address: "10.231.1.25" }] });
      assert.deepEqual(p.fixed_ips, [{ subnet_id: subnetId, ip_address: "10.231.1.25" }]);
      assert.match(p.mac_address, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      assert.equal(p.revision_number >= 1, true);
      await expectError(
        c.neutron.createPort({ network_id: netId, fixed_ips: [{ subnet_id: subnetId, ip_address: "10.231.1.25" }] }),
        409,
        "IpAddressAlreadyAllocated",
        `IP address 10.231.1.25 already allocated in subnet ${subnetId}`,
      );
      await expectError(
        c.neutron.createPort({ network_id: netId, fixed_ips: [{ subnet_id: subnetId, ip_address: "10.231.9.5" }] }),
        400,
        "InvalidIpForSubnet",
        "IP address 10.231.9.5 is not a valid IP for the specified subnet.",
      );
    });

    it("reports an exhausted subnet as 409 IpAddressGenerationFailure", async () => {
      const { netId, subnetId } = await network("10.231.2.0/29", [{ start: "10.231.2.2", end: "10.231.2.3" }]);
      await port(netId, { fixed_ips: [{ subnet_id: subnetId }] });
      await port(netId, { fixed_ips: [{ subnet_id: subnetId }] });
      await expectError(
        c.neutron.createPort({ network_id: netId, fixed_ips: [{ subnet_id: subnetId }] }),
        409,
        "IpAddressGenerationFailure",
        `No more IP addresses available on network ${netId}.`,
      );
    });

    it("adds and removes one fixed IP with If-Match; a stale revision is 412; fixed_ips sort as strings", async () => {
      const { netId, subnetId } = await network("10.231.3.0/24", [{ start: "10.231.3.100", end: "10.231.3.200" }]);
      const p = await port(netId, { fixed_ips: [{ subnet_id: subnetId, ip_address: "10.231.3.25" }] });
      const added = await c.neutron.updateFixedIps(p.id, [...p.fixed_ips, { subnet_id: subnetId }], p.revision_number);
      assert.equal(added.fixed_ips.length, 2);
      assert.ok(added.revision_number > p.revision_number);
      const newIp = added.fixed_ips.find((f) => f.ip_address !== "10.231.3.25")!.ip_address;
      assert.deepEqual(
        added.fixed_ips.map((f) => f.ip_address),
        [newIp, "10.231.3.25"],
        "10.231.3.1xx sorts before 10.231.3.25",
      );
      await expectError(
        c.neutron.updateFixedIps(p.id, [...added.fixed_ips, { subnet_id: subnetId }], p.revision_number),
        412,
        "RevisionNumberConstraintFailed",
        `Constrained to ${p.revision_number}, but current revision is ${added.revision_number}`,
      );
      const removed = await c.neutron.updateFixedIps(
        p.id,
        added.fixed_ips.filter((f) => f.ip_address !== newIp),
        added.revision_number,
      );
      assert.deepEqual(
        removed.fixed_ips.map((f) => f.ip_address),
        ["10.231.3.25"],
      );
      const other = await port(netId, { fixed_ips: [{ subnet_id: subnetId, ip_address: newIp }] });
      assert.equal(other.fixed_ips[0]!.ip_address, newIp, "a removed address is free again");
    });

    it("tags ports and filters by tag", async () => {
      const { netId } = await network("10.231.4.0/24");
      const p = await port(netId);
      await c.neutron.addTag("ports", p.id, `${tag}-a`);
      await c.neutron.addTag("ports", p.id, `${tag}-a`);
      const found = await c.neutron.listPorts({ tags: `${tag}-a` });
      assert.deepEqual(
        found.map((x) => x.id),
        [p.id],
      );
      assert.deepEqual((await c.neutron.getPort(p.id)).tags, [`${tag}-a`]);
      await c.neutron.deleteTag("ports", p.id, `${tag}-a`);
      await expectError(
        c.neutron.deleteTag("ports", p.id, `${tag}-a`),
        404,
        "TagNotFound",
        `Tag ${tag}-a could not be found.`,
      );
      await expectError(
        c.neutron.addTag("ports", "00000000-0000-0000-0000-000000000000", "x"),
        404,
        "TagResourceNotFound",
        "Resource ports 00000000-0000-0000-0000-000000000000 could not be found.",
      );
    });

    it("reports missing resources with Neutron's own types and messages", async () => {
      const zero = "00000000-0000-0000-0000-000000000000";
      await expectError(c.neutron.getPort(zero), 404, "PortNotFound", `Port ${zero} could not be found.`);
      await expectError(c.neutron.getNetwork(zero), 404, "NetworkNotFound", `Network ${zero} could not be found.`);
      await expectError(c.neutron.getRouter(zero), 404, "RouterNotFound", `Router ${zero} could not be found`);
      await expectError(c.neutron.getSubnet(zero), 404, "SubnetNotFound", `Subnet ${zero} could not be found.`);
    });

    async function routerOn(subnetId: string): Promise<string> {
      const r = await c.neutron.createRouter({ name: `${tag}-router` });
      later(() => c.neutron.deleteRouter(r.id));
      await c.neutron.addRouterInterface(r.id, subnetId);
      later(async () => {
        await c.neutron.setRoutes(r.id, []);
        await c.neutron.removeRouterInterface(r.id, subnetId);
      });
      return r.id;
    }

    it("replaces router routes with PUT and adds/removes them atomically, both ways", async () => {
      const { subnetId } = await network("10.231.5.0/24");
      const rid = await routerOn(subnetId);
      const r1 = await c.neutron.setRoutes(rid, [
        { destination: "10.50.0.1/32", nexthop: "10.231.5.10" },
        { destination: "10.50.0.2/32", nexthop: "10.231.5.11" },
      ]);
      assert.equal(r1.routes.length, 2);
      const r2 = await c.neutron.addExtraRoutes(rid, [
        { destination: "10.50.0.3/32", nexthop: "10.231.5.12" },
        { destination: "10.50.0.1/32", nexthop: "10.231.5.10" },
      ]);
      assert.equal(r2.routes.length, 3, "re-adding an existing route is idempotent");
      const r3 = await c.neutron.removeExtraRoutes(rid, [
        { destination: "10.50.0.2/32", nexthop: "10.231.5.11" },
        { destination: "10.99.0.9/32", nexthop: "10.231.5.99" },
      ]);
      assert.deepEqual(r3.routes.map((x) => x.destination).sort(), ["10.50.0.1/32", "10.50.0.3/32"]);
      const stale = r1.revision_number;
      await expectError(c.neutron.setRoutes(rid, [], stale), 412, "RevisionNumberConstraintFailed");
      const r4 = await c.neutron.setRoutes(rid, [], r3.revision_number);
      assert.deepEqual(r4.routes, []);
    });

    it("refuses the route beyond the limit (400 RoutesExhausted) and a nexthop off the router (400 InvalidRoutes)", async () => {
      const { subnetId } = await network("10.231.6.0/24");
      const rid = await routerOn(subnetId);
      const routes = Array.from({ length: cloud.routeLimit }, (_, i) => ({
        destination: `10.60.0.${i + 1}/32`,
        nexthop: "10.231.6.10",
      }));
      const full = await c.neutron.setRoutes(rid, routes);
      assert.equal(full.routes.length, cloud.routeLimit);
      const msg = `Unable to complete operation for ${rid}. The number of routes exceeds the maximum ${cloud.routeLimit}.`;
      await expectError(
        c.neutron.addExtraRoutes(rid, [{ destination: "10.60.1.1/32", nexthop: "10.231.6.10" }]),
        400,
        "RoutesExhausted",
        msg,
      );
      await expectError(
        c.neutron.setRoutes(rid, [...routes, { destination: "10.60.1.1/32", nexthop: "10.231.6.10" }]),
        400,
        "RoutesExhausted",
        msg,
      );
      await c.neutron.setRoutes(rid, []);
      await expectError(
        c.neutron.setRoutes(rid, [{ destination: "10.20.1.0/24", nexthop: "10.30.0.1" }]),
        400,
        "InvalidRoutes",
        "Invalid format for routes: [{'destination': '10.20.1.0/24', 'nexthop': '10.30.0.1'}], the nexthop is not connected with router",
      );
    });

    it("associates a floating IP with a chosen fixed IP of a port with two", async () => {
      const ext = await c.neutron.createNetwork({
        name: `${tag}-ext`,
        "router:external": true,
        "provider:network_type": "flat",
        "provider:physical_network": `ext${process.pid % 1000}`,
      });
      later(() => c.neutron.deleteNetwork(ext.id));
      await c.neutron.createSubnet({
        network_id: ext.id,
        cidr: "10.231.99.0/24",
        ip_version: 4,
        enable_dhcp: false,
        name: `${tag}-extsub`,
      });
      const { netId, subnetId } = await network("10.231.7.0/24");
      const r = await c.neutron.createRouter({
        name: `${tag}-fiprouter`,
        external_gateway_info: { network_id: ext.id },
      });
      later(() => c.neutron.deleteRouter(r.id));
      await c.neutron.addRouterInterface(r.id, subnetId);
      later(() => c.neutron.removeRouterInterface(r.id, subnetId));
      later(() => c.neutron.updateRouter(r.id, { external_gateway_info: {} }));
      const p = await port(netId, {
        fixed_ips: [
          { subnet_id: subnetId, ip_address: "10.231.7.20" },
          { subnet_id: subnetId, ip_address: "10.231.7.21" },
        ],
      });
      await expectError(
        c.neutron.createFloatingIp({ floating_network_id: ext.id, port_id: p.id }),
        400,
        "BadRequest",
        `Bad floatingip request: Port ${p.id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP.`,
      );
      await expectError(
        c.neutron.createFloatingIp({ floating_network_id: ext.id, port_id: p.id, fixed_ip_address: "10.231.7.99" }),
        400,
        "BadRequest",
        `Bad floatingip request: Port ${p.id} does not have fixed ip 10.231.7.99.`,
      );
      const fip = await c.neutron.createFloatingIp({
        floating_network_id: ext.id,
        port_id: p.id,
        fixed_ip_address: "10.231.7.21",
      });
      later(() => c.neutron.deleteFloatingIp(fip.id));
      assert.equal(fip.fixed_ip_address, "10.231.7.21");
      assert.equal(fip.port_id, p.id);
      assert.match(fip.floating_ip_address, /^10\.231\.99\./);
      const moved = await c.neutron.updateFloatingIp(fip.id, { port_id: null });
      assert.equal(moved.port_id, null);
    });

    it("attaches a port to a server (sync, 200) and detaches it (202, then unbound, not deleted)", async () => {
      const { netId } = await network("10.231.8.0/24");
      const boot = await port(netId);
      const server = await c.nova.createServer({
        name: `${tag}-vm`,
        networks: [{ port: boot.id }],
        ...cloud.serverExtras,
      });
      later(() => c.nova.deleteServer(server.id));
      await until(
        "the server to be ACTIVE",
        async () => ((await c.nova.getServer(server.id)).status === "ACTIVE" ? true : undefined),
        120_000,
      );
      const p = await port(netId);
      const att = await c.nova.attachInterface(server.id, p.id);
      assert.equal(att.port_id, p.id);
      assert.equal(att.mac_addr, p.mac_address);
      assert.deepEqual(
        att.fixed_ips.map((f) => f.ip_address),
        p.fixed_ips.map((f) => f.ip_address),
      );
      assert.equal((await c.neutron.getPort(p.id)).device_id, server.id);
      assert.ok((await c.nova.listInterfaces(server.id)).some((a) => a.port_id === p.id));
      await expectError(
        c.nova.attachInterface(server.id, p.id),
        409,
        "conflictingRequest",
        `Port ${p.id} is still in use.`,
      );
      const zero = "00000000-0000-0000-0000-000000000000";
      await expectError(
        c.nova.attachInterface(server.id, zero),
        404,
        "itemNotFound",
        `Port id ${zero} could not be found.`,
      );
      await expectError(
        c.nova.attachInterface(zero, p.id),
        404,
        "itemNotFound",
        `Instance ${zero} could not be found.`,
      );
      await c.nova.detachInterface(server.id, p.id);
      const unbound = await until("the port to be unbound", async () => {
        const now = await c.neutron.getPort(p.id);
        return now.device_id === "" ? now : undefined;
      });
      assert.equal(unbound.device_owner, "");
      // An eni port cooling down detached relies on this: unbound, it still holds its address.
      assert.deepEqual(unbound.fixed_ips, p.fixed_ips);
      const held = p.fixed_ips[0]!;
      await expectError(
        c.neutron.createPort({ network_id: netId, fixed_ips: [{ ...held }] }),
        409,
        "IpAddressAlreadyAllocated",
        `IP address ${held.ip_address} already allocated in subnet ${held.subnet_id}`,
      );
      await c.nova.detachInterface(server.id, p.id);
      assert.ok(isOpenStackError(await c.nova.attachInterface(zero, p.id).catch((e: unknown) => e), "itemNotFound"));
    });
  });
}
