// Floating IPs for pods (the controller, against the embedded Neutron and the Kubernetes API
// double): a pod annotated `auto` gets a new floating IP on its address on the VM's port (mix) or
// on its own port (eni), one
// annotated with an address gets that one; both are written back on the pod with an event, and
// let go with the pod (the allocated one deleted, the given one disassociated). A floating IP tcnp
// did not associate is never touched.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { FIP_ADDRESS_ANNOTATION, FIP_ANNOTATION } from "../../src/controller/floating.js";
import { startController, type Controller } from "../../src/controller/run.js";
import { nullLogger } from "../../src/log/logger.js";
import { kubeDouble, type KubeDouble } from "../helpers/kube-double.js";
import { kubeControllerConfig, NET, ROUTER, routeWorld } from "../helpers/route-world.js";

describe("floating IPs for pods (embedded Neutron, Kubernetes API double)", () => {
  let api: KubeDouble | undefined;
  let c: Controller | undefined;
  after(async () => {
    await c?.stop();
    await api?.close();
  });

  it("associates auto and given floating IPs with pods' addresses, reports them, releases them with the pods", async () => {
    const w = await routeWorld({ vms: 1 });
    const ext = await w.c.neutron.createNetwork({ name: "ext", "router:external": true });
    await w.c.neutron.createSubnet({ network_id: ext.id, cidr: "203.0.113.0/24", ip_version: 4, name: "ext" });
    await w.c.neutron.updateRouter(ROUTER, { external_gateway_info: { network_id: ext.id } });
    const [a, b, other] = await w.addPods(0, 3);
    // An eni pod: a port of its own on the pod network.
    const subnet = Object.values(w.em.world.subnets).find((x) => x.network_id === NET)!.id;
    const eniPort = await w.c.neutron.createPort({
      network_id: NET,
      name: "pod-e",
      fixed_ips: [{ subnet_id: subnet }],
    });
    const e = eniPort.fixed_ips[0]!.ip_address;
    // An operator's floating IP for pod b, and one tcnp has nothing to do with (on the third address).
    const given = await w.c.neutron.createFloatingIp({ floating_network_id: ext.id });
    const foreign = await w.c.neutron.createFloatingIp({
      floating_network_id: ext.id,
      port_id: w.vms[0]!.portId,
      fixed_ip_address: other,
    });

    api = await kubeDouble();
    api.podEvent("ADDED", {
      namespace: "default",
      name: "a",
      uid: "ua",
      ip: a!,
      annotations: { [FIP_ANNOTATION]: "auto" },
    });
    api.podEvent("ADDED", {
      namespace: "default",
      name: "b",
      uid: "ub",
      ip: b!,
      annotations: { [FIP_ANNOTATION]: given.floating_ip_address },
    });
    api.podEvent("ADDED", { namespace: "default", name: "c", uid: "uc", ip: other! });
    api.podEvent("ADDED", {
      namespace: "default",
      name: "e",
      uid: "ue",
      ip: e,
      annotations: { [FIP_ANNOTATION]: "auto" },
    });
    const cfg = kubeControllerConfig({ apiUrl: api.url, events: true }, { floatingIpNetwork: ext.id });
    c = await startController(cfg, { env: {}, log: nullLogger, fetch: w.em.fetch, loop: false });
    await c.step();

    const fips = () => Object.values(w.em.world.floatingips);
    const onA = fips().find((f) => f.fixed_ip_address === a);
    assert.ok(onA !== undefined, "pod a has a new floating IP");
    assert.equal(onA.port_id, w.vms[0]!.portId, "on the VM's port (mix)");
    assert.equal(w.em.world.floatingips[given.id]!.fixed_ip_address, b, "pod b has the given one");
    const onE = fips().find((f) => f.fixed_ip_address === e);
    assert.equal(onE?.port_id, eniPort.id, "an eni pod's floating IP is on its own port");
    const pod = (name: string) => api!.pods().find((p) => p.name === name)!;
    assert.equal(pod("a").annotations?.[FIP_ADDRESS_ANNOTATION], onA.floating_ip_address);
    assert.equal(pod("b").annotations?.[FIP_ADDRESS_ANNOTATION], given.floating_ip_address);
    const reasons = (api.events as Array<{ reason: string; involvedObject: { name: string } }>).map(
      (e) => `${e.involvedObject.name} ${e.reason}`,
    );
    assert.deepEqual(reasons.sort(), ["a FloatingIPAssociated", "b FloatingIPAssociated", "e FloatingIPAssociated"]);

    // A second pass changes nothing.
    const before = JSON.stringify(fips());
    await c.step();
    assert.equal(JSON.stringify(fips()), before);

    // The pods go: a's floating IP is deleted, b's given one disassociated and kept.
    api.podEvent("DELETED", { namespace: "default", name: "a", uid: "ua", ip: a! });
    api.podEvent("DELETED", { namespace: "default", name: "b", uid: "ub", ip: b! });
    api.podEvent("DELETED", { namespace: "default", name: "e", uid: "ue", ip: e });
    await c.step();
    assert.equal(w.em.world.floatingips[onA.id], undefined, "the allocated floating IP is deleted");
    assert.equal(w.em.world.floatingips[onE!.id], undefined, "the eni pod's too");
    assert.equal(w.em.world.floatingips[given.id]!.port_id, null, "the given one is disassociated");
    assert.ok(w.em.world.floatingips[given.id] !== undefined, "and kept for its owner");
    assert.equal(
      w.em.world.floatingips[foreign.id]!.fixed_ip_address,
      other,
      "a floating IP tcnp did not make is untouched",
    );
  });
});
