// Leader election on a Lease and pod events, against a small Kubernetes API double (this machine
// has no kube-apiserver): it keeps Leases with resourceVersion conflicts and records Events.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import { Kube, type Lease } from "../../src/controller/kube.js";
import { LeaderElector } from "../../src/controller/leader.js";
import { nullLogger } from "../../src/log/logger.js";
import { nodeFetch } from "../../src/openstack/node-fetch.js";
import type { Clock } from "../../src/plugins/deps.js";

function fakeApiServer(): Promise<{ url: string; leases: Map<string, Lease>; events: unknown[]; close(): Promise<void> }> {
  const leases = new Map<string, Lease>();
  const events: unknown[] = [];
  let rv = 1;
  const srv = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const send = (status: number, obj?: unknown): void => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(obj === undefined ? "" : JSON.stringify(obj));
      };
      const m = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/]+))?$/.exec(req.url ?? "");
      if (m !== null) {
        const key = `${m[1]}/${m[2] ?? ""}`;
        if (req.method === "GET") return leases.has(key) ? send(200, leases.get(key)) : send(404, { kind: "Status", code: 404 });
        const l = JSON.parse(body) as Lease;
        const k = `${m[1]}/${l.metadata.name}`;
        if (req.method === "POST") {
          if (leases.has(k)) return send(409, { code: 409 });
          l.metadata.resourceVersion = String(rv++);
          leases.set(k, l);
          return send(201, l);
        }
        if (req.method === "PUT") {
          if (leases.get(k)?.metadata.resourceVersion !== l.metadata.resourceVersion) return send(409, { code: 409 });
          l.metadata.resourceVersion = String(rv++);
          leases.set(k, l);
          return send(200, l);
        }
      }
      if (req.url === "/api/v1/pods") return send(200, { items: [{ metadata: { namespace: "default", name: "web-1", uid: "u1" }, status: { podIP: "10.10.10.50" } }] });
      if (req.method === "POST" && /\/api\/v1\/namespaces\/[^/]+\/events/.test(req.url ?? "")) {
        events.push(JSON.parse(body));
        return send(201, {});
      }
      send(404);
    });
  });
  return new Promise((resolve) => srv.listen(0, "127.0.0.1", () => {
    const a = srv.address() as { port: number };
    resolve({ url: `http://127.0.0.1:${a.port}`, leases, events, close: () => new Promise((r) => srv.close(() => r())) });
  }));
}

describe("leader election and events (Kubernetes API double)", () => {
  let api: Awaited<ReturnType<typeof fakeApiServer>>;
  after(async () => api?.close());

  it("one replica leads; the other takes over only after the lease expires", async () => {
    api = await fakeApiServer();
    let now = 1_000_000;
    const clock: Clock = { now: () => now, sleep: async () => {} };
    const kube = new Kube(nodeFetch(), { apiUrl: api.url });
    const mk = (identity: string) => new LeaderElector({ kube, namespace: "kube-system", name: "vrc", identity, durationMs: 15_000, clock, log: nullLogger });
    const a = mk("a");
    const b = mk("b");
    assert.equal(await a.tick(), true);
    assert.equal(await b.tick(), false, "a holds a fresh lease");
    now += 5_000;
    assert.equal(await a.tick(), true, "a renews");
    assert.equal(await b.tick(), false);
    now += 16_000;
    assert.equal(a.isLeader, false, "a did not renew within the lease duration: it stops leading");
    assert.equal(await b.tick(), true, "b takes the expired lease");
    assert.equal(api.leases.get("kube-system/vrc")?.spec.holderIdentity, "b");
    assert.equal(api.leases.get("kube-system/vrc")?.spec.leaseTransitions, 1);
    assert.equal(await a.tick(), false, "a sees b's fresh lease");
  });

  it("posts a Warning event on a pod left without a route", async () => {
    api ??= await fakeApiServer();
    const kube = new Kube(nodeFetch(), { apiUrl: api.url });
    const pod = (await kube.listPods())[0]!;
    await kube.createEvent(pod, "NoRouterRoute", "No route", "vrouter-route-controller", new Date(0));
    const e = api.events[0] as { reason: string; type: string; involvedObject: { name: string } };
    assert.deepEqual([e.reason, e.type, e.involvedObject.name], ["NoRouterRoute", "Warning", "web-1"]);
  });
});
