// Leader election on a Lease, pod events and the permission check at start, against a small
// Kubernetes API double (the real control plane runs them in test/kube): it keeps Leases with
// resourceVersion conflicts, records Events and refuses what a test denies.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Kube, kubeAccess } from "../../src/controller/kube.js";
import { LeaderElector } from "../../src/controller/leader.js";
import { nullLogger } from "../../src/log/logger.js";
import { nodeFetch } from "../../src/openstack/node-fetch.js";
import type { Clock } from "../../src/base/clock.js";
import { startController } from "../../src/controller/run.js";
import { kubeDouble, type KubeDouble } from "../helpers/kube-double.js";
import { kubeControllerConfig, routeWorld } from "../helpers/route-world.js";

describe("leader election and events (Kubernetes API double)", () => {
  let api: KubeDouble | undefined;
  after(async () => api?.close());

  it("one replica leads; the other takes over only after the lease expires", async () => {
    api = await kubeDouble();
    let now = 1_000_000;
    const clock: Clock = { now: () => now, sleep: async () => {} };
    const kube = new Kube(nodeFetch(), { apiUrl: api.url });
    const mk = (identity: string) =>
      new LeaderElector({
        kube,
        namespace: "kube-system",
        name: "vrc",
        identity,
        durationMs: 15_000,
        clock,
        log: nullLogger,
      });
    const a = mk("a");
    const b = mk("b");
    assert.equal(await a.tick(), true);
    assert.equal(await b.tick(), false, "a holds a fresh lease");
    now += 5_000;
    assert.equal(await a.tick(), true, "a renews");
    assert.equal(await b.tick(), false);
    now += 9_000;
    assert.equal(a.isLeader, true, "within the renew deadline a still leads");
    now += 1_500;
    assert.equal(
      a.isLeader,
      false,
      "10 s without a renewal (2/3 of the lease): a stops leading, 5 s before the lease expires",
    );
    assert.equal(await b.tick(), false, "while b still sees a's unexpired lease: no overlap");
    now += 5_500;
    assert.equal(await b.tick(), true, "b takes the expired lease");
    assert.equal(api.leases.get("kube-system/vrc")?.spec.holderIdentity, "b");
    assert.equal(api.leases.get("kube-system/vrc")?.spec.leaseTransitions, 1);
    assert.equal(await a.tick(), false, "a sees b's fresh lease");
  });

  // Projected service-account tokens rotate (the kubelet rewrites the file): each request reads it.
  it("sends the service-account token as the file holds it now", async () => {
    api ??= await kubeDouble();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-sa-"));
    try {
      const tokenFile = path.join(dir, "token");
      fs.writeFileSync(tokenFile, "token-one\n");
      const access = kubeAccess({}, { apiUrl: api.url, tokenFile });
      assert.ok(access !== undefined);
      const kube = new Kube(nodeFetch(), access);
      await kube.getLease("kube-system", "rotation");
      fs.writeFileSync(tokenFile, "token-two\n");
      await kube.getLease("kube-system", "rotation");
      assert.deepEqual(api.authorizations.slice(-2), ["Bearer token-one", "Bearer token-two"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("posts a Warning event on a pod left without a route", async () => {
    api ??= await kubeDouble();
    api.podEvent("ADDED", { namespace: "default", name: "web-1", uid: "u1", ip: "10.10.10.50" });
    const kube = new Kube(nodeFetch(), { apiUrl: api.url });
    const pod = (await kube.listPods())[0]!;
    await kube.createEvent(pod, "NoRouterRoute", "No route", "vrouter-route-controller", new Date(0));
    const e = api.events[0] as { reason: string; type: string; involvedObject: { name: string } };
    assert.deepEqual([e.reason, e.type, e.involvedObject.name], ["NoRouterRoute", "Warning", "web-1"]);
  });

  it("a controller whose role lacks a verb it needs refuses to start, naming the verb", async () => {
    api ??= await kubeDouble();
    api.denied.add("watch pods");
    api.denied.add("update leases");
    const w = await routeWorld({ vms: 1 });
    const cfg = kubeControllerConfig({ apiUrl: api.url, events: true, watchPods: true });
    try {
      await assert.rejects(
        startController(cfg, { env: {}, log: nullLogger, fetch: w.em.fetch }),
        /may not: update leases\.coordination\.k8s\.io in kube-system; watch pods \(all namespaces\)\. Grant them/,
      );
      // Without the pod watch, watching pods is not needed; the Lease still is.
      await assert.rejects(
        startController(
          { ...cfg, kubernetes: { ...cfg.kubernetes, watchPods: false } },
          { env: {}, log: nullLogger, fetch: w.em.fetch },
        ),
        (e: Error) => !e.message.includes("watch pods") && e.message.includes("update leases"),
      );
    } finally {
      api.denied.clear();
    }
  });
});
