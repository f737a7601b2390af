// Floating IPs for pods as the operator grants them, on a real kube-apiserver (issue 21 item 2): the
// route controller runs with its ServiceAccount's token under the shipped roles (pod patch only with
// the floating-ips addition), against pods in several namespaces; and a second cluster's controller
// on the same project, network and router (its own, empty API) touches nothing of this one's.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { FIP_ADDRESS_ANNOTATION, FIP_ANNOTATION, grantTag } from "../../src/controller/floating.js";
import { startController, type Controller } from "../../src/controller/run.js";
import { nullLogger } from "../../src/log/logger.js";
import { repoRoot } from "../helpers/cni.js";
import { kubeDouble, type KubeDouble } from "../helpers/kube-double.js";
import { controlPlaneSkipReason, startControlPlane, type ControlPlane } from "../helpers/kube-real.js";
import { kubeControllerConfig, ROUTER, routeWorld, type RouteWorld } from "../helpers/route-world.js";

const skip = controlPlaneSkipReason();
const DEPLOY = path.join(repoRoot, "deploy", "kubernetes");
const NS = "tcnp-system";

describe("floating IPs for pods on a real control plane (kube-apiserver 1.20.2, RBAC)", { skip: skip ?? false }, () => {
  let cp: ControlPlane;
  let w: RouteWorld;
  let ext = "";
  let ips: string[] = [];
  const running: Controller[] = [];
  let other: KubeDouble | undefined;

  before(async () => {
    cp = await startControlPlane();
    w = await routeWorld({ vms: 1 });
    const e = await w.c.neutron.createNetwork({ name: "ext", "router:external": true });
    await w.c.neutron.createSubnet({ network_id: e.id, cidr: "203.0.113.0/24", ip_version: 4, name: "ext" });
    await w.c.neutron.updateRouter(ROUTER, { external_gateway_info: { network_id: e.id } });
    ext = e.id;
    ips = await w.addPods(0, 5);
    cp.kubectl(["apply", "--server-side", "-k", path.join(DEPLOY, "base")]);
    cp.kubectl(["apply", "--server-side", "-k", path.join(DEPLOY, "floating-ips")]);
    // (no controller-manager here: the namespaces' default ServiceAccounts are made by hand)
    for (const ns of ["shop", "evil"]) {
      cp.kubectl(["create", "namespace", ns]);
      cp.kubectl(["create", "serviceaccount", "default", "-n", ns]);
    }
  });
  after(async () => {
    for (const c of running) await c.stop();
    await other?.close();
    await cp?.stop();
  });

  // A pod the way a kubelet would report it: Running, with its address (the API's status subresource).
  async function pod(ns: string, name: string, ip: string, want: string): Promise<void> {
    const spec = { automountServiceAccountToken: false, containers: [{ name: "c", image: "pause" }] };
    await cp.api("POST", `/api/v1/namespaces/${ns}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, namespace: ns, annotations: { [FIP_ANNOTATION]: want } },
      spec,
    });
    const cur = await cp.api<Record<string, unknown>>("GET", `/api/v1/namespaces/${ns}/pods/${name}`);
    await cp.api("PUT", `/api/v1/namespaces/${ns}/pods/${name}/status`, {
      ...cur,
      status: { phase: "Running", podIP: ip, podIPs: [{ ip }] },
    });
  }
  const annotation = async (ns: string, name: string): Promise<string | undefined> =>
    (
      await cp.api<{ metadata: { annotations?: Record<string, string> } }>(
        "GET",
        `/api/v1/namespaces/${ns}/pods/${name}`,
      )
    ).metadata.annotations?.[FIP_ADDRESS_ANNOTATION];
  const reasons = async (ns: string): Promise<string[]> =>
    (
      await cp.api<{ items: Array<{ reason: string; involvedObject: { name: string } }> }>(
        "GET",
        `/api/v1/namespaces/${ns}/events`,
      )
    ).items.map((e) => `${ns}/${e.involvedObject.name} ${e.reason}`);

  it("grants what the configuration and the tags say, writes the address back, refuses the rest", async () => {
    const lb = await w.c.neutron.createFloatingIp({ floating_network_id: ext, description: "prod LB, do not touch" });
    const webs = await w.c.neutron.createFloatingIp({ floating_network_id: ext });
    await w.c.neutron.setTags("floatingips", webs.id, [grantTag("default", "shop")]);
    await pod("shop", "a", ips[0]!, "auto");
    await pod("shop", "web-0", ips[1]!, webs.floating_ip_address);
    await pod("evil", "x", ips[2]!, lb.floating_ip_address);
    await pod("evil", "y", ips[3]!, webs.floating_ip_address);
    const token = await cp.serviceAccountToken(NS, "vrouter-route-controller");
    const grants = { network: ext, namespaces: { shop: { auto: true, max: 3 } }, reservationMs: 600_000 };
    const cfg = kubeControllerConfig(
      { apiUrl: cp.url, tokenFile: token, caCert: cp.caFile, leaseNamespace: NS, events: true },
      { floatingIps: grants },
    );
    const c = await startController(cfg, { env: {}, log: nullLogger, fetch: w.em.fetch, loop: false });
    running.push(c);
    await c.step();
    const fips = Object.values(w.em.world.floatingips);
    const onA = fips.find((f) => f.fixed_ip_address === ips[0]);
    assert.ok(onA !== undefined, "shop/a has an allocated floating IP");
    assert.equal(
      w.em.world.floatingips[webs.id]!.fixed_ip_address,
      ips[1],
      "shop/web-0 has the address tagged for shop",
    );
    assert.equal(await annotation("shop", "a"), onA.floating_ip_address, "the address is written back on the pod");
    assert.equal(w.em.world.floatingips[lb.id]!.port_id, null, "evil does not get the operator's floating IP");
    assert.equal(w.em.world.floatingips[lb.id]!.description, "prod LB, do not touch");
    const evil = await reasons("evil");
    assert.ok(
      evil.includes("evil/x FloatingIPNotGranted") && evil.includes("evil/y FloatingIPNotGranted"),
      evil.join(", "),
    );

    // web-0 restarts (deleted, created again on another address): it gets its address back, and
    // nothing else in shop gets it meanwhile.
    await cp.api("DELETE", `/api/v1/namespaces/shop/pods/web-0?gracePeriodSeconds=0`);
    await pod("shop", "thief", ips[2]!, webs.floating_ip_address);
    await c.step();
    assert.notEqual(w.em.world.floatingips[webs.id]!.fixed_ip_address, ips[2], "reserved for shop/web-0");
    await pod("shop", "web-0", ips[4]!, webs.floating_ip_address);
    await c.step();
    assert.equal(w.em.world.floatingips[webs.id]!.fixed_ip_address, ips[4], "the new web-0 has its address back");

    // A second cluster in the same project (its own, empty Kubernetes): one pass of it, and of its
    // route reconcile, changes nothing of this cluster's.
    const before = JSON.stringify([Object.values(w.em.world.floatingips), w.em.world.routers[ROUTER]!.routes]);
    other = await kubeDouble();
    const b = await startController(
      kubeControllerConfig({ apiUrl: other.url }, { cluster: "b", floatingIps: grants }),
      { env: {}, log: nullLogger, fetch: w.em.fetch, loop: false },
    );
    running.push(b);
    await b.step();
    await b.step();
    assert.equal(
      JSON.stringify([Object.values(w.em.world.floatingips), w.em.world.routers[ROUTER]!.routes]),
      before,
      "cluster b deleted, disassociated or re-routed nothing",
    );
  });
});
