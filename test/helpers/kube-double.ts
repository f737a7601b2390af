// A small Kubernetes API double (this machine has no kube-apiserver): Leases with resourceVersion
// conflicts, pods (list and a watch stream the test feeds), and Events it records.
import * as http from "node:http";
import type { Lease } from "../../src/controller/kube.js";

export interface KubeDouble {
  url: string;
  leases: Map<string, Lease>;
  events: unknown[];
  /** The Authorization header of every request, in order. */
  authorizations: string[];
  /** Permissions the double refuses in SelfSubjectAccessReviews ("verb resource", e.g. "watch pods"). */
  denied: Set<string>;
  /** Open watch streams. */
  watchers(): number;
  /** End every open watch stream (as an API server does on restart or timeout). */
  dropWatches(): void;
  /** Send a pod event to every open watch. */
  podEvent(type: "ADDED" | "MODIFIED" | "DELETED", pod: DoublePod): void;
  /** The pods as the double holds them now (annotations written by PATCH included). */
  pods(): DoublePod[];
  close(): Promise<void>;
}

export interface DoublePod {
  namespace: string;
  name: string;
  uid: string;
  ip?: string;
  annotations?: Record<string, string>;
  hostNetwork?: boolean;
  phase?: string;
  deleting?: boolean;
  createdAt?: number;
}

export function kubeDouble(): Promise<KubeDouble> {
  const leases = new Map<string, Lease>();
  const events: unknown[] = [];
  const authorizations: string[] = [];
  type Pod = DoublePod;
  const pods = new Map<string, Pod>();
  const watches = new Set<http.ServerResponse>();
  const denied = new Set<string>();
  let rv = 1;
  const podObject = (p: Pod): unknown => ({
    metadata: {
      namespace: p.namespace,
      name: p.name,
      uid: p.uid,
      annotations: p.annotations ?? {},
      creationTimestamp: new Date(p.createdAt ?? 0).toISOString(),
      ...(p.deleting === true ? { deletionTimestamp: new Date().toISOString() } : {}),
    },
    spec: { hostNetwork: p.hostNetwork === true },
    status: { phase: p.phase ?? "Running", ...(p.ip === undefined ? {} : { podIP: p.ip }) },
  });
  const srv = http.createServer((req, res) => {
    authorizations.push(req.headers.authorization ?? "");
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
        if (req.method === "GET")
          return leases.has(key) ? send(200, leases.get(key)) : send(404, { kind: "Status", code: 404 });
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
      if (req.method === "POST" && req.url === "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") {
        const r = JSON.parse(body) as { spec: { resourceAttributes: { verb: string; resource: string } } };
        const a = r.spec.resourceAttributes;
        return send(201, { ...r, status: { allowed: !denied.has(`${a.verb} ${a.resource}`) } });
      }
      if (req.url === "/api/v1/pods?watch=1") {
        res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
        for (const p of pods.values()) res.write(`${JSON.stringify({ type: "ADDED", object: podObject(p) })}\n`);
        watches.add(res);
        res.on("close", () => watches.delete(res));
        return;
      }
      if (req.url === "/api/v1/pods") return send(200, { items: [...pods.values()].map(podObject) });
      const pm = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(req.url ?? "");
      if (pm !== null && req.method === "PATCH") {
        const p = [...pods.values()].find((x) => x.namespace === pm[1] && x.name === pm[2]);
        if (p === undefined) return send(404, { code: 404 });
        const patch = JSON.parse(body) as { metadata?: { annotations?: Record<string, string | null> } };
        const a = { ...(p.annotations ?? {}) };
        for (const [k, v] of Object.entries(patch.metadata?.annotations ?? {})) {
          if (v === null) delete a[k];
          else a[k] = v;
        }
        p.annotations = a;
        return send(200, podObject(p));
      }
      if (req.method === "POST" && /\/api\/v1\/namespaces\/[^/]+\/events/.test(req.url ?? "")) {
        events.push(JSON.parse(body));
        return send(201, {});
      }
      send(404);
    });
  });
  return new Promise((resolve) =>
    srv.listen(0, "127.0.0.1", () => {
      const a = srv.address() as { port: number };
      resolve({
        url: `http://127.0.0.1:${a.port}`,
        leases,
        authorizations,
        events,
        denied,
        watchers: () => watches.size,
        dropWatches() {
          for (const w of watches) w.destroy();
          watches.clear();
        },
        pods: () => [...pods.values()],
        podEvent(type, pod) {
          if (type === "DELETED") pods.delete(pod.uid);
          else pods.set(pod.uid, pod);
          for (const w of watches) w.write(`${JSON.stringify({ type, object: podObject(pod) })}\n`);
        },
        close: () =>
          new Promise((r) => {
            for (const w of watches) w.destroy();
            srv.close(() => r());
          }),
      });
    }),
  );
}
