// Pod events wake the route controller early: with an hour-long interval, a pod's address appearing
// (or going) in a Kubernetes watch gets its router route within a second; status updates that keep
// the address do not wake it; the watch comes back after the API server drops it.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { startController, type Controller } from "../../src/controller/run.js";
import { nullLogger } from "../../src/log/logger.js";
import { kubeDouble, type KubeDouble } from "../helpers/kube-double.js";
import { kubeControllerConfig, ROUTER, routeWorld } from "../helpers/route-world.js";

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, f: () => boolean, ms = 5000): Promise<number> {
  const t0 = Date.now();
  while (!f()) {
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
  return Date.now() - t0;
}

describe("vrouter-route-controller woken by pod events (Kubernetes API double)", () => {
  let api: KubeDouble | undefined;
  let c: Controller | undefined;
  after(async () => {
    await c?.stop();
    await api?.close();
  });

  it("a pod's address in the watch gets its route long before the interval; deletion removes it", async () => {
    const w = await routeWorld({ vms: 2 });
    api = await kubeDouble();
    const cfg = kubeControllerConfig({ apiUrl: api.url, watchPods: true });
    c = await startController(cfg, { env: {}, log: nullLogger, fetch: w.em.fetch });
    const routes = (): string[] => w.em.world.routers[ROUTER]!.routes.map((r) => r.destination);
    const wakeups = (): number => c!.metrics.get("tcnp_pod_event_wakeups_total") ?? 0;
    await until("the first reconcile and the watch", () => c!.last !== undefined && api!.watchers() === 1);
    const [ip] = await w.addPods(1, 1);
    await sleep(1000);
    assert.deepEqual(routes(), [], "no reconcile without an event (the interval is an hour)");

    api.podEvent("ADDED", { namespace: "default", name: "web-0", uid: "u0" });
    api.podEvent("MODIFIED", { namespace: "default", name: "web-0", uid: "u0", ip: ip! });
    const ms = await until("the route after the pod event", () => routes().includes(`${ip!}/32`), 3000);
    process.stdout.write(`# route installed ${ms} ms after the pod event (interval 1 h)\n`);
    assert.equal(wakeups(), 1);

    api.podEvent("MODIFIED", { namespace: "default", name: "web-0", uid: "u0", ip: ip! });
    await sleep(500);
    assert.equal(wakeups(), 1, "a status update that keeps the address does not wake it");

    await w.removePod(1, ip!);
    api.podEvent("DELETED", { namespace: "default", name: "web-0", uid: "u0", ip: ip! });
    await until("the route to go after the pod is deleted", () => !routes().includes(`${ip!}/32`), 3000);
    assert.equal(wakeups(), 2);
  });

  it("the watch comes back after the API server drops it, and events wake it again", async () => {
    assert.ok(api !== undefined && c !== undefined);
    api.dropWatches();
    assert.equal(api.watchers(), 0);
    await until("the watch to reconnect", () => api!.watchers() === 1, 10_000);
    const before = c.metrics.get("tcnp_pod_event_wakeups_total") ?? 0;
    api.podEvent("ADDED", { namespace: "default", name: "web-1", uid: "u1", ip: "10.10.10.99" });
    await until(
      "a wake-up after reconnecting",
      () => (c!.metrics.get("tcnp_pod_event_wakeups_total") ?? 0) === before + 1,
      3000,
    );
  });
});
