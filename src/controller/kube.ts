// A thin Kubernetes client for the controller's three needs: Leases (leader election), Events
// (pods left without a route), and listing pods (to name them). In-cluster credentials by default.
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import type { Logger } from "../log/logger.js";
import type { HttpFetch } from "../openstack/http.js";

export interface KubeAccess {
  apiUrl: string;
  token?: string;
  /** Read again for every request: projected service-account tokens are rotated by the kubelet. */
  tokenFile?: string;
  /** The API server's CA (in-cluster: the service account's ca.crt). */
  caCert?: string;
}

export interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface PodInfo {
  namespace: string;
  name: string;
  uid: string;
  ip?: string;
  annotations?: Record<string, string>;
  /** On the node's own network (its address is the node's). */
  hostNetwork?: boolean;
  /** Pending, Running, Succeeded, Failed. */
  phase?: string;
  /** Being deleted (a deletionTimestamp is set). */
  deleting?: boolean;
  /** ms since the epoch. */
  createdAt?: number;
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
export function kubeAccess(
  env: Readonly<Record<string, string | undefined>>,
  cfg: { apiUrl?: string; tokenFile?: string; caCert?: string },
): KubeAccess | undefined {
  const tokenFile = cfg.tokenFile ?? (fs.existsSync(`${SA}/token`) ? `${SA}/token` : undefined);
  if (tokenFile !== undefined) fs.accessSync(tokenFile, fs.constants.R_OK);
  const caCert = cfg.caCert ?? (fs.existsSync(`${SA}/ca.crt`) ? `${SA}/ca.crt` : undefined);
  const extra = { ...(tokenFile === undefined ? {} : { tokenFile }), ...(caCert === undefined ? {} : { caCert }) };
  if (cfg.apiUrl !== undefined) return { apiUrl: cfg.apiUrl.replace(/\/+$/, ""), ...extra };
  const host = env["KUBERNETES_SERVICE_HOST"];
  if (host === undefined) return undefined;
  const port = env["KUBERNETES_SERVICE_PORT"] ?? "443";
  return { apiUrl: `https://${host.includes(":") ? `[${host}]` : host}:${port}`, ...extra };
}

/** The bearer token for the next request: the token file as it is now, else the fixed token. */
export function bearerOf(a: KubeAccess): string | undefined {
  if (a.tokenFile !== undefined) return fs.readFileSync(a.tokenFile, "utf8").trim();
  return a.token;
}

export interface KubeNode {
  metadata: { name: string; resourceVersion?: string; annotations?: Record<string, string> };
  spec?: { taints?: Array<{ key: string; value?: string; effect: string }> };
  status?: { capacity?: Record<string, string>; allocatable?: Record<string, string> };
}

export interface AccessNeed {
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
}

export class Kube {
  readonly #fetch: HttpFetch;
  readonly #a: KubeAccess;
  constructor(fetch: HttpFetch, access: KubeAccess) {
    this.#fetch = fetch;
    this.#a = access;
  }

  async #req<T>(
    method: string,
    path: string,
    body?: unknown,
    ok: number[] = [200, 201],
    contentType = "application/json",
  ): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json", "content-type": contentType };
    const token = bearerOf(this.#a);
    if (token !== undefined) headers["authorization"] = `Bearer ${token}`;
    const res = await this.#fetch(
      {
        method,
        url: `${this.#a.apiUrl}${path}`,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      },
      { timeoutMs: 10_000 },
    );
    if (!ok.includes(res.status)) throw new KubeError(method, path, res.status, res.body);
    return (res.body === "" ? undefined : JSON.parse(res.body)) as T;
  }

  /**
   * Which of these permissions the identity lacks (SelfSubjectAccessReview, which every
   * authenticated identity may ask), each as "verb resource[.group] [in namespace]".
   */
  async missingAccess(needs: readonly AccessNeed[]): Promise<string[]> {
    const missing: string[] = [];
    for (const n of needs) {
      const r = await this.#req<{ status?: { allowed?: boolean } }>(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SelfSubjectAccessReview",
          spec: {
            resourceAttributes: {
              verb: n.verb,
              resource: n.resource,
              group: n.group ?? "",
              ...(n.namespace === undefined ? {} : { namespace: n.namespace }),
            },
          },
        },
      );
      if (r.status?.allowed !== true)
        missing.push(
          `${n.verb} ${n.resource}${n.group === undefined ? "" : `.${n.group}`} ${n.namespace === undefined ? "(all namespaces)" : `in ${n.namespace}`}`,
        );
    }
    return missing;
  }

  /** Any object as the API server's JSON. */
  getJson(path: string): Promise<unknown> {
    return this.#req<unknown>("GET", path);
  }

  async getNode(name: string): Promise<KubeNode> {
    return this.#req<KubeNode>("GET", `/api/v1/nodes/${encodeURIComponent(name)}`);
  }
  /** A JSON merge patch of a Node (metadata, spec). */
  async patchNode(name: string, patch: unknown): Promise<KubeNode> {
    return this.#req<KubeNode>(
      "PATCH",
      `/api/v1/nodes/${encodeURIComponent(name)}`,
      patch,
      [200],
      "application/merge-patch+json",
    );
  }
  /** A JSON merge patch of a Node's status (extended resources are advertised in its capacity). */
  async patchNodeStatus(name: string, patch: unknown): Promise<KubeNode> {
    return this.#req<KubeNode>(
      "PATCH",
      `/api/v1/nodes/${encodeURIComponent(name)}/status`,
      patch,
      [200],
      "application/merge-patch+json",
    );
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
    return this.#req<Lease>("POST", `/apis/coordination.k8s.io/v1/namespaces/${l.metadata.namespace}/leases`, {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      ...l,
    });
  }
  /** Replace with optimistic concurrency (metadata.resourceVersion); 409 when someone else won. */
  replaceLease(l: Lease): Promise<Lease> {
    return this.#req<Lease>(
      "PUT",
      `/apis/coordination.k8s.io/v1/namespaces/${l.metadata.namespace}/leases/${l.metadata.name}`,
      { apiVersion: "coordination.k8s.io/v1", kind: "Lease", ...l },
    );
  }

  async listPods(): Promise<PodInfo[]> {
    const r = await this.#req<{
      items: Array<{
        metadata: {
          namespace: string;
          name: string;
          uid: string;
          annotations?: Record<string, string>;
          deletionTimestamp?: string;
          creationTimestamp?: string;
        };
        spec?: { hostNetwork?: boolean };
        status?: { podIP?: string; phase?: string };
      }>;
    }>("GET", "/api/v1/pods");
    return r.items.map((p) => ({
      namespace: p.metadata.namespace,
      name: p.metadata.name,
      uid: p.metadata.uid,
      ...(p.status?.podIP === undefined ? {} : { ip: p.status.podIP }),
      ...(p.metadata.annotations === undefined ? {} : { annotations: p.metadata.annotations }),
      ...(p.spec?.hostNetwork === true ? { hostNetwork: true } : {}),
      ...(p.status?.phase === undefined ? {} : { phase: p.status.phase }),
      ...(p.metadata.deletionTimestamp === undefined ? {} : { deleting: true }),
      ...(p.metadata.creationTimestamp === undefined ? {} : { createdAt: Date.parse(p.metadata.creationTimestamp) }),
    }));
  }

  /** Set (or, with null, remove) annotations of a pod: a JSON merge patch. */
  async annotatePod(pod: PodInfo, annotations: Record<string, string | null>): Promise<void> {
    await this.#req(
      "PATCH",
      `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`,
      { metadata: { annotations } },
      [200],
      "application/merge-patch+json",
    );
  }

  async createEvent(
    pod: PodInfo,
    reason: string,
    message: string,
    component: string,
    now: Date,
    type: "Warning" | "Normal" = "Warning",
  ): Promise<void> {
    const t = now.toISOString();
    await this.#req("POST", `/api/v1/namespaces/${pod.namespace}/events`, {
      apiVersion: "v1",
      kind: "Event",
      metadata: { generateName: `${pod.name}.`, namespace: pod.namespace },
      involvedObject: { apiVersion: "v1", kind: "Pod", namespace: pod.namespace, name: pod.name, uid: pod.uid },
      reason,
      message,
      type,
      source: { component },
      firstTimestamp: t,
      lastTimestamp: t,
      count: 1,
    });
  }
}

/**
 * Watch pods in all namespaces and call `onChange` when a pod's address appears, changes or goes
 * away (not on every status update). Reconnects after the stream ends or fails, with backoff; a
 * 410 Gone (expired resourceVersion) starts over from a fresh watch.
 */
export function watchPods(
  access: KubeAccess,
  onChange: (why: string) => void,
  log: Logger,
  opts: { retryMs?: number } = {},
): { stop(): void } {
  const ips = new Map<string, string>();
  return watchStream(access, "/api/v1/pods?watch=1", "pod", log, opts, (type, object) => {
    const uid = object.metadata?.uid;
    if (uid === undefined) return;
    const pod = `${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? ""}`;
    const ip = object.status?.podIP ?? "";
    if (type === "DELETED") {
      if (ips.delete(uid) && ip !== "") onChange(`pod ${pod} deleted`);
      return;
    }
    if ((ips.get(uid) ?? "") === ip) return;
    ips.set(uid, ip);
    if (ip !== "") onChange(`pod ${pod} has ${ip}`);
  });
}

/** Watch nodes and call `onDeleted` when a Node object is deleted (its VM usually gone with it). */
export function watchNodeDeletions(
  access: KubeAccess,
  onDeleted: (why: string) => void,
  log: Logger,
  opts: { retryMs?: number } = {},
): { stop(): void } {
  return watchStream(access, "/api/v1/nodes?watch=1", "node", log, opts, (type, object) => {
    if (type === "DELETED") onDeleted(`node ${object.metadata?.name ?? ""} deleted`);
  });
}

interface WatchedObject {
  metadata?: { uid?: string; namespace?: string; name?: string };
  status?: { podIP?: string };
  code?: number;
}

/** A GET whose response is read as it streams (lists, watches), sent at once. */
export function getStream(
  access: KubeAccess,
  path: string,
  onRes: (res: http.IncomingMessage) => void,
): http.ClientRequest {
  const u = new URL(`${access.apiUrl}${path}`);
  const headers: Record<string, string> = { accept: "application/json" };
  const token = bearerOf(access);
  if (token !== undefined) headers["authorization"] = `Bearer ${token}`;
  const mod = u.protocol === "https:" ? https : http;
  const o: https.RequestOptions = {
    method: "GET",
    headers,
    ...(access.caCert === undefined ? {} : { ca: fs.readFileSync(access.caCert) }),
  };
  const req = mod.request(u, o, onRes);
  req.end();
  return req;
}

// A watch stream of newline-separated events, reconnected after it ends or fails (with backoff).
function watchStream(
  access: KubeAccess,
  path: string,
  what: string,
  log: Logger,
  opts: { retryMs?: number },
  onEvent: (type: string, object: WatchedObject) => void,
): { stop(): void } {
  let stopped = false;
  let req: http.ClientRequest | undefined;
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;
  const handle = (line: string): void => {
    let ev: { type?: string; object?: WatchedObject };
    try {
      ev = JSON.parse(line) as typeof ev;
    } catch {
      return;
    }
    if (ev.type === "ERROR") {
      log.info(`${what} watch ended by the API server; starting over`, { code: ev.object?.code });
      req?.destroy();
      return;
    }
    if (ev.type !== undefined && ev.object !== undefined) onEvent(ev.type, ev.object);
  };
  const connect = (): void => {
    if (stopped) return;
    let buf = "";
    req = getStream(access, path, (res) => {
      if (res.statusCode !== 200) {
        log.warn(`cannot watch ${what}s`, { status: res.statusCode });
        res.resume();
        return;
      }
      failures = 0;
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        buf += d;
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          handle(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    });
    const again = (): void => {
      req = undefined;
      if (stopped || timer !== undefined) return;
      const delay = Math.min(30_000, (opts.retryMs ?? 1000) * 2 ** Math.min(failures++, 5));
      timer = setTimeout(() => {
        timer = undefined;
        connect();
      }, delay);
    };
    req.on("error", (e) => {
      if (!stopped) log.warn(`${what} watch failed; reconnecting`, { error: e });
      again();
    });
    req.on("close", again);
  };
  connect();
  return {
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      req?.destroy();
    },
  };
}
