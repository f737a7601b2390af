// A thin Kubernetes client for the controller's three needs: Leases (leader election), Events
// (pods left without a route), and listing pods (to name them). In-cluster credentials by default.
import * as fs from "node:fs";
import type { HttpFetch } from "../openstack/http.js";

export interface KubeAccess {
  apiUrl: string;
  token?: string;
}

export interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

export interface PodInfo {
  namespace: string;
  name: string;
  uid: string;
  ip?: string;
}

export class KubeError extends Error {
  readonly status: number;
  constructor(method: string, path: string, status: number, body: string) {
    super(`${method} ${path}: ${status} ${body.slice(0, 200)}`);
    this.status = status;
  }
}

const SA = "/var/run/secrets/kubernetes.io/serviceaccount";

/** In-cluster access, or an explicit apiUrl/tokenFile; undefined when neither is available. */
export function kubeAccess(env: Readonly<Record<string, string | undefined>>, cfg: { apiUrl?: string; tokenFile?: string }): KubeAccess | undefined {
  const tokenFile = cfg.tokenFile ?? (fs.existsSync(`${SA}/token`) ? `${SA}/token` : undefined);
  const token = tokenFile === undefined ? undefined : fs.readFileSync(tokenFile, "utf8").trim();
  if (cfg.apiUrl !== undefined) return { apiUrl: cfg.apiUrl.replace(/\/+$/, ""), ...(token === undefined ? {} : { token }) };
  const host = env["KUBERNETES_SERVICE_HOST"];
  if (host === undefined) return undefined;
  const port = env["KUBERNETES_SERVICE_PORT"] ?? "443";
  return { apiUrl: `https://${host.includes(":") ? `[${host}]` : host}:${port}`, ...(token === undefined ? {} : { token }) };
}

export class Kube {
  readonly #fetch: HttpFetch;
  readonly #a: KubeAccess;
  constructor(fetch: HttpFetch, access: KubeAccess) {
    this.#fetch = fetch;
    this.#a = access;
  }

  async #req<T>(method: string, path: string, body?: unknown, ok: number[] = [200, 201]): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json", "content-type": "application/json" };
    if (this.#a.token !== undefined) headers["authorization"] = `Bearer ${this.#a.token}`;
    const res = await this.#fetch({ method, url: `${this.#a.apiUrl}${path}`, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) }, { timeoutMs: 10_000 });
    if (!ok.includes(res.status)) throw new KubeError(method, path, res.status, res.body);
    return (res.body === "" ? undefined : JSON.parse(res.body)) as T;
  }

  async getLease(ns: string, name: string): Promise<Lease | undefined> {
    try {
      return await this.#req<Lease>("GET", `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}`);
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) return undefined;
      throw e;
    }
  }
  createLease(l: Lease): Promise<Lease> {
    return this.#req<Lease>("POST", `/apis/coordination.k8s.io/v1/namespaces/${l.metadata.namespace}/leases`, { apiVersion: "coordination.k8s.io/v1", kind: "Lease", ...l });
  }
  /** Replace with optimistic concurrency (metadata.resourceVersion); 409 when someone else won. */
  replaceLease(l: Lease): Promise<Lease> {
    return this.#req<Lease>("PUT", `/apis/coordination.k8s.io/v1/namespaces/${l.metadata.namespace}/leases/${l.metadata.name}`, { apiVersion: "coordination.k8s.io/v1", kind: "Lease", ...l });
  }

  async listPods(): Promise<PodInfo[]> {
    const r = await this.#req<{ items: Array<{ metadata: { namespace: string; name: string; uid: string }; status?: { podIP?: string } }> }>("GET", "/api/v1/pods");
    return r.items.map((p) => ({ namespace: p.metadata.namespace, name: p.metadata.name, uid: p.metadata.uid, ...(p.status?.podIP === undefined ? {} : { ip: p.status.podIP }) }));
  }

  async createEvent(pod: PodInfo, reason: string, message: string, component: string, now: Date): Promise<void> {
    const t = now.toISOString();
    await this.#req("POST", `/api/v1/namespaces/${pod.namespace}/events`, {
      apiVersion: "v1", kind: "Event",
      metadata: { generateName: `${pod.name}.`, namespace: pod.namespace },
      involvedObject: { apiVersion: "v1", kind: "Pod", namespace: pod.namespace, name: pod.name, uid: pod.uid },
      reason, message, type: "Warning", source: { component }, firstTimestamp: t, lastTimestamp: t, count: 1,
    });
  }
}
