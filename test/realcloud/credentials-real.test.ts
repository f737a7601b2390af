// The node credential and the controller's, split (issue 21 item 6), on the real Keystone + Neutron +
// Nova: application credentials with the access rules tcnp ships (deploy/kubernetes/credentials/),
// enforced by each service's keystonemiddleware (service_type set in its [keystone_authtoken]). The
// node credential does the node's work — ports, their tags and addresses, interface attachments —
// and is refused a router's routes and floating IPs; the controller's may change both.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { createClients, type Clients } from "../../src/openstack/clients.js";
import { isOpenStackError } from "../../src/openstack/errors.js";
import { systemClock } from "../../src/base/clock.js";
import { realCloud, realCloudSkipReason } from "../helpers/realcloud.js";

const skip = realCloudSkipReason();
const rules = (name: string): unknown[] =>
  JSON.parse(
    fs.readFileSync(
      path.join(path.dirname(fileURLToPath(import.meta.url)), "../../../deploy/kubernetes/credentials", name),
      "utf8",
    ),
  ) as unknown[];

// What a refusal by keystonemiddleware's access-rule check looks like from the client: 401
// ("Token authorization failed"), after the client's one re-authentication.
const refused = async (what: string, f: () => Promise<unknown>): Promise<void> => {
  try {
    await f();
  } catch (e) {
    assert.ok(isOpenStackError(e, undefined, 401) || isOpenStackError(e, undefined, 403), `${what}: ${String(e)}`);
    return;
  }
  assert.fail(`${what} was allowed`);
};

describe("split credentials with access rules (real Keystone + Neutron + Nova)", { skip: skip ?? false }, () => {
  const rc = realCloud();
  let admin: Clients;
  const made: Array<() => Promise<unknown>> = [];
  let node: Clients;
  let controller: Clients;

  async function appCred(name: string, accessRules: unknown[]): Promise<Clients> {
    const tok = await admin.session.token();
    const ks = rc.auth.authUrl.replace(/\/$/, "");
    const who = (await (
      await fetch(`${ks}/auth/tokens`, { headers: { "X-Auth-Token": tok.id, "X-Subject-Token": tok.id } })
    ).json()) as {
      token: { user: { id: string } };
    };
    const userId = who.token.user.id;
    const r = await fetch(`${ks}/users/${userId}/application_credentials`, {
      method: "POST",
      headers: { "X-Auth-Token": tok.id, "Content-Type": "application/json" },
      body: JSON.stringify({ application_credential: { name, access_rules: accessRules } }),
    });
    assert.equal(r.status, 201, `create ${name}: ${await r.clone().text()}`);
    const ac = ((await r.json()) as { application_credential: { id: string; secret: string } }).application_credential;
    made.push(() =>
      fetch(`${ks}/users/${userId}/application_credentials/${ac.id}`, {
        method: "DELETE",
        headers: { "X-Auth-Token": tok.id },
      }),
    );
    return createClients({
      auth: {
        authUrl: rc.auth.authUrl,
        applicationCredentialId: ac.id,
        applicationCredentialSecret: ac.secret,
        interface: "public",
      },
      fetch: rc.fetch,
      clock: systemClock,
    });
  }

  before(async () => {
    admin = createClients({ auth: rc.auth, fetch: rc.fetch, clock: systemClock });
    const stamp = Date.now();
    node = await appCred(`tcnp-node-${stamp}`, rules("node-access-rules.json"));
    controller = await appCred(`tcnp-controller-${stamp}`, rules("controller-access-rules.json"));
  });
  after(async () => {
    for (const f of made.reverse()) await f().catch(() => {});
  });

  it("the node credential manages ports and is refused routers and floating IPs; the controller's may change both", async () => {
    const net = await admin.neutron.createNetwork({ name: "tcnp-cred" });
    made.push(() => admin.neutron.deleteNetwork(net.id));
    const sub = await admin.neutron.createSubnet({
      network_id: net.id,
      cidr: "10.233.0.0/24",
      ip_version: 4,
      name: "tcnp-cred",
    });
    const router = await admin.neutron.createRouter({ name: "tcnp-cred" });
    made.push(() => admin.neutron.deleteRouter(router.id));
    await admin.neutron.addRouterInterface(router.id, sub.id);
    made.push(() => admin.neutron.removeRouterInterface(router.id, sub.id));
    const ext = await admin.neutron.createNetwork({ name: "tcnp-cred-ext", "router:external": true });
    made.push(() => admin.neutron.deleteNetwork(ext.id));
    await admin.neutron.createSubnet({
      network_id: ext.id,
      cidr: "203.0.113.0/24",
      ip_version: 4,
      name: "tcnp-cred-ext",
    });

    // The node's work: a port, its tags, one more address on it, then gone.
    const port = await node.neutron.createPort({
      network_id: net.id,
      name: "tcnp-cred",
      fixed_ips: [{ subnet_id: sub.id }],
    });
    await node.neutron.setTags("ports", port.id, ["tcnp", "tcnp-cluster=default"]);
    const cur = await node.neutron.getPort(port.id);
    const more = await node.neutron.updateFixedIps(
      port.id,
      [...cur.fixed_ips.map((f) => ({ subnet_id: f.subnet_id, ip_address: f.ip_address })), { subnet_id: sub.id }],
      cur.revision_number,
    );
    assert.equal(more.fixed_ips.length, 2, "the node credential adds an address to a port");
    assert.ok((await node.neutron.listSubnets({ network_id: net.id })).length > 0);

    // Not the node's: the router's routes, floating IPs.
    await refused("the node credential reading the router", () => node.neutron.getRouter(router.id));
    await refused("the node credential changing the router's routes", () =>
      node.neutron.setRoutes(
        router.id,
        [{ destination: "10.233.5.0/24", nexthop: "10.233.0.9" }],
        router.revision_number,
      ),
    );
    await refused("the node credential creating a floating IP", () =>
      node.neutron.createFloatingIp({ floating_network_id: ext.id }),
    );
    await refused("the node credential listing floating IPs", () => node.neutron.listFloatingIps({}));

    // The controller's credential may.
    const r = await controller.neutron.getRouter(router.id);
    await controller.neutron.addExtraRoutes(r.id, [
      { destination: "10.233.5.0/24", nexthop: cur.fixed_ips[0]!.ip_address },
    ]);
    await controller.neutron.removeExtraRoutes(r.id, [
      { destination: "10.233.5.0/24", nexthop: cur.fixed_ips[0]!.ip_address },
    ]);
    await admin.neutron.updateRouter(router.id, { external_gateway_info: { network_id: ext.id } });
    const fip = await controller.neutron.createFloatingIp({ floating_network_id: ext.id });
    await controller.neutron.deleteFloatingIp(fip.id);
    await admin.neutron.updateRouter(router.id, { external_gateway_info: null });

    await node.neutron.deletePort(port.id);
  });
});
