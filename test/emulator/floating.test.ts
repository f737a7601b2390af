// Floating IPs for pods (the controller, against the embedded Neutron and the Kubernetes API
// double), as the operator grants them (issue 21 items 2 and 3): only granted namespaces' pods get
// one, `auto` only where granted and up to a cap, a named address only when tagged for the
// namespace, never one another pod holds or is reserved for; a restarted StatefulSet pod gets its
// address back; hostNetwork and finished pods get none; an operator's description is left alone;
// another cluster's controller in the same project touches nothing of this one's.
import { describe, it, afterEach } from "node:test";
import assert from "node:assert/strict";
import { FIP_ADDRESS_ANNOTATION, FIP_ANNOTATION, grantTag } from "../../src/controller/floating.js";
import type { ControllerConfig } from "../../src/controller/config.js";
import { startController, type Controller } from "../../src/controller/run.js";
import { nullLogger } from "../../src/log/logger.js";
import type { FloatingIp } from "../../src/openstack/types.js";
import { kubeDouble, type DoublePod, type KubeDouble } from "../helpers/kube-double.js";
import { kubeControllerConfig, NET, ROUTER, routeWorld } from "../helpers/route-world.js";

type World = Awaited<ReturnType<typeof routeWorld>>;

async function setup(pods = 6): Promise<{ w: World; ext: string; ips: string[] }> {
  const w = await routeWorld({ vms: 1 });
  const ext = await w.c.neutron.createNetwork({ name: "ext", "router:external": true });
  await w.c.neutron.createSubnet({ network_id: ext.id, cidr: "203.0.113.0/24", ip_version: 4, name: "ext" });
  await w.c.neutron.updateRouter(ROUTER, { external_gateway_info: { network_id: ext.id } });
  return { w, ext: ext.id, ips: await w.addPods(0, pods) };
}

describe("floating IPs for pods (embedded Neutron, Kubernetes API double)", () => {
  const apis: KubeDouble[] = [];
  const controllers: Controller[] = [];
  afterEach(async () => {
    for (const c of controllers.splice(0)) await c.stop();
    for (const a of apis.splice(0)) await a.close();
  });
  const controller = async (w: World, over: Partial<ControllerConfig>): Promise<{ api: KubeDouble; c: Controller }> => {
    const api = await kubeDouble();
    apis.push(api);
    const c = await startController(kubeControllerConfig({ apiUrl: api.url, events: true }, over), {
      env: {},
      log: nullLogger,
      fetch: w.em.fetch,
      loop: false,
    });
    controllers.push(c);
    return { api, c };
  };
  const reasons = (api: KubeDouble): string[] =>
    (api.events as Array<{ reason: string; involvedObject: { namespace: string; name: string } }>).map(
      (e) => `${e.involvedObject.namespace}/${e.involvedObject.name} ${e.reason}`,
    );
  const pod = (ns: string, name: string, ip: string, want?: string, more: Partial<DoublePod> = {}): DoublePod => ({
    namespace: ns,
    name,
    uid: `${ns}-${name}-${Math.random()}`,
    ip,
    createdAt: Date.now(),
    ...(want === undefined ? {} : { annotations: { [FIP_ANNOTATION]: want } }),
    ...more,
  });

  it("associates what is granted, reports it, and lets it go with the pod (allocated: deleted; given: handed back)", async () => {
    const { w, ext, ips } = await setup(3);
    const given = await w.c.neutron.createFloatingIp({ floating_network_id: ext, description: "for shop's web" });
    await w.c.neutron.setTags("floatingips", given.id, [grantTag("default", "shop")]);
    const { api, c } = await controller(w, {
      floatingIps: { network: ext, namespaces: { shop: { auto: true, max: 3 } }, reservationMs: 0 },
    });
    const a = pod("shop", "a", ips[0]!, "auto");
    const b = pod("shop", "b", ips[1]!, given.floating_ip_address);
    api.podEvent("ADDED", a);
    api.podEvent("ADDED", b);
    await c.step();
    const fips = (): FloatingIp[] => Object.values(w.em.world.floatingips);
    const onA = fips().find((f) => f.fixed_ip_address === ips[0]);
    assert.equal(onA?.port_id, w.vms[0]!.portId, "pod a has a new floating IP on the VM's port");
    assert.ok(onA.tags.includes("tcnp-cluster=default") && onA.tags.includes("tcnp-pod=shop/a"));
    assert.equal(w.em.world.floatingips[given.id]!.fixed_ip_address, ips[1], "pod b has the given one");
    assert.equal(w.em.world.floatingips[given.id]!.description, "for shop's web", "the operator's description stays");
    assert.equal(
      api.pods().find((p) => p.name === "a")!.annotations?.[FIP_ADDRESS_ANNOTATION],
      onA.floating_ip_address,
    );
    assert.deepEqual(reasons(api).sort(), ["shop/a FloatingIPAssociated", "shop/b FloatingIPAssociated"]);
    const before = JSON.stringify(fips());
    await c.step();
    assert.equal(JSON.stringify(fips()), before, "a second pass changes nothing");

    api.podEvent("DELETED", a);
    api.podEvent("DELETED", b);
    await c.step(); // disassociated (reserved for their names: 0 s here)
    await c.step(); // the reservation over: let go
    assert.equal(w.em.world.floatingips[onA.id], undefined, "the allocated floating IP is deleted");
    const back = w.em.world.floatingips[given.id]!;
    assert.equal(back.port_id, null, "the given one is disassociated");
    assert.deepEqual(
      back.tags,
      [grantTag("default", "shop")],
      "and handed back: only the operator's grant is left on it",
    );
  });

  it("refuses what is not granted: other namespaces, untagged addresses, auto without the grant, past the cap", async () => {
    const { w, ext, ips } = await setup(5);
    // The operator's own floating IP, not for pods at all.
    const lb = await w.c.neutron.createFloatingIp({ floating_network_id: ext, description: "prod LB, do not touch" });
    const shops = await w.c.neutron.createFloatingIp({ floating_network_id: ext });
    await w.c.neutron.setTags("floatingips", shops.id, [grantTag("default", "shop")]);
    const { api, c } = await controller(w, {
      floatingIps: {
        network: ext,
        namespaces: { shop: { auto: true, max: 1 }, web: { auto: false, max: 2 } },
        reservationMs: 60_000,
      },
    });
    api.podEvent("ADDED", pod("evil", "x", ips[0]!, lb.floating_ip_address));
    api.podEvent("ADDED", pod("evil", "y", ips[1]!, "auto"));
    api.podEvent("ADDED", pod("web", "w", ips[2]!, shops.floating_ip_address));
    api.podEvent("ADDED", pod("web", "v", ips[3]!, "auto"));
    api.podEvent("ADDED", pod("shop", "s1", ips[4]!, "auto", { createdAt: 1 }));
    await c.step();
    const lbNow = w.em.world.floatingips[lb.id]!;
    assert.equal(lbNow.port_id, null, "an operator's floating IP is not taken");
    assert.equal(lbNow.description, "prod LB, do not touch");
    assert.deepEqual(lbNow.tags, []);
    assert.equal(w.em.world.floatingips[shops.id]!.port_id, null, "shop's address is not web's");
    const mapped = Object.values(w.em.world.floatingips).filter((f) => f.port_id !== null);
    assert.deepEqual(
      mapped.map((f) => f.fixed_ip_address),
      [ips[4]],
      "only shop's auto pod has one",
    );
    assert.deepEqual(reasons(api).sort(), [
      "evil/x FloatingIPNotGranted",
      "evil/y FloatingIPNotGranted",
      "shop/s1 FloatingIPAssociated",
      "web/v FloatingIPNotGranted",
      "web/w FloatingIPNotGranted",
    ]);
    // The cap: shop holds its one floating IP; a second auto pod of shop gets none.
    const [extra] = await w.addPods(0, 1);
    api.podEvent("ADDED", pod("shop", "s2", extra!, "auto"));
    await c.step();
    assert.ok(reasons(api).includes("shop/s2 FloatingIPQuota"));
    assert.equal(Object.values(w.em.world.floatingips).filter((f) => f.port_id !== null).length, 1);
  });

  it("a StatefulSet pod that restarts gets its address back; another pod naming it meanwhile is refused; two asking at once: the older wins", async () => {
    const { w, ext, ips } = await setup(4);
    const addr = await w.c.neutron.createFloatingIp({ floating_network_id: ext });
    await w.c.neutron.setTags("floatingips", addr.id, [grantTag("default", "shop")]);
    const { api, c } = await controller(w, {
      floatingIps: { network: ext, namespaces: { shop: { auto: false, max: 3 } }, reservationMs: 600_000 },
    });
    // Two pods name it in one pass: the older gets it, whatever the order they were listed in.
    const web0 = pod("shop", "web-0", ips[0]!, addr.floating_ip_address, { createdAt: 1000 });
    const thief = pod("shop", "thief", ips[1]!, addr.floating_ip_address, { createdAt: 2000 });
    api.podEvent("ADDED", thief);
    api.podEvent("ADDED", web0);
    await c.step();
    assert.equal(w.em.world.floatingips[addr.id]!.fixed_ip_address, ips[0], "web-0 (the older) has it");
    assert.ok(reasons(api).includes("shop/thief FloatingIPInUse"));
    // web-0 restarts: gone for a moment (the address stays reserved for shop/web-0), then back on
    // another address; the other pod asking all along does not get it.
    api.podEvent("DELETED", web0);
    await c.step();
    assert.equal(w.em.world.floatingips[addr.id]!.port_id, null, "disassociated while web-0 is away");
    assert.ok(w.em.world.floatingips[addr.id]!.tags.includes("tcnp-pod=shop/web-0"), "and reserved for it");
    await c.step();
    assert.equal(w.em.world.floatingips[addr.id]!.port_id, null, "the thief does not get it meanwhile");
    api.podEvent("ADDED", pod("shop", "web-0", ips[2]!, addr.floating_ip_address, { createdAt: 3000 }));
    await c.step();
    assert.equal(w.em.world.floatingips[addr.id]!.fixed_ip_address, ips[2], "the new web-0 gets its address back");
  });

  it("hostNetwork and finished pods get none; a pod that finishes lets its floating IP go", async () => {
    const { w, ext, ips } = await setup(3);
    const { api, c } = await controller(w, {
      floatingIps: { network: ext, namespaces: { shop: { auto: true, max: 5 } }, reservationMs: 0 },
    });
    api.podEvent("ADDED", pod("shop", "host", ips[0]!, "auto", { hostNetwork: true }));
    api.podEvent("ADDED", pod("shop", "done", ips[1]!, "auto", { phase: "Succeeded" }));
    const job = pod("shop", "job", ips[2]!, "auto");
    api.podEvent("ADDED", job);
    await c.step();
    assert.deepEqual(
      Object.values(w.em.world.floatingips)
        .filter((f) => f.port_id !== null)
        .map((f) => f.fixed_ip_address),
      [ips[2]],
    );
    // The job finishes (its pod object stays): its address will go back to the pool, and another
    // namespace's pod may get it — the floating IP must not stay on it.
    api.podEvent("MODIFIED", { ...job, phase: "Succeeded" });
    await c.step();
    assert.deepEqual(
      Object.values(w.em.world.floatingips).filter((f) => f.port_id !== null),
      [],
    );
  });

  it("a second cluster's controller in the same project touches nothing of the first's (floating IPs, routes)", async () => {
    const { w, ext, ips } = await setup(2);
    const given = await w.c.neutron.createFloatingIp({ floating_network_id: ext });
    await w.c.neutron.setTags("floatingips", given.id, [grantTag("default", "shop")]);
    const grants = { network: ext, namespaces: { shop: { auto: true, max: 5 } }, reservationMs: 600_000 };
    const a = await controller(w, { floatingIps: grants });
    a.api.podEvent("ADDED", pod("shop", "p", ips[0]!, "auto"));
    a.api.podEvent("ADDED", pod("shop", "q", ips[1]!, given.floating_ip_address));
    await a.c.step();
    const state = (): string =>
      JSON.stringify([Object.values(w.em.world.floatingips), w.em.world.routers[ROUTER]!.routes]);
    const before = state();
    assert.equal(Object.values(w.em.world.floatingips).filter((f) => f.port_id !== null).length, 2);
    // Cluster b: the same project, network and router, its own (empty) Kubernetes.
    const b = await controller(w, { cluster: "b", floatingIps: grants });
    await b.c.step();
    await b.c.step();
    assert.equal(state(), before, "cluster b deleted, disassociated or re-routed nothing of cluster a's");
    void NET;
  });
});
