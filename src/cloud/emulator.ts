// The embedded OpenStack: one request → response handler answering as Keystone v3, the Neutron v2.0
// subset tcnp uses, Nova os-interface and the metadata service, with fault injection and data-path
// hooks. Tests hand `emulator.fetch` to the client; `tcnp cloud` serves the same handler on sockets.
import * as fs from "node:fs";
import { NetworkError, type HttpRequest, type HttpResponse } from "../openstack/http.js";
import type { FloatingIp, Port, Router } from "../openstack/types.js";
import { adminRoutes } from "./admin.js";
import {
  ApiError,
  json,
  keystoneError,
  match,
  middleware401,
  neutronError,
  novaError,
  rng,
  type Ctx,
  type Route,
} from "./http-kit.js";
import { keystoneRoutes, validToken } from "./keystone.js";
import { metadataRoutes } from "./metadata.js";
import { neutronRoutes } from "./neutron.js";
import { novaRoutes } from "./nova.js";
import { emptyWorld, type ServerRec, type TokenRec, type World } from "./world.js";

export type ServiceName = "identity" | "network" | "compute" | "metadata" | "admin";

export interface EmulatorConfig {
  /** Base URL the catalog advertises; by default derived from the request's Host header. */
  publicUrl?: string;
  tokenTtlSeconds: number;
  routeLimit: number;
  /** How the route limit is reported: ≤ 2026.1 Neutron (400 RoutesExhausted) or newer (409 OverQuota). */
  routeLimitMode: "RoutesExhausted" | "OverQuota";
  /** Advertise and serve `extraroute-atomic` (add_extraroutes / remove_extraroutes). */
  extraRouteAtomic: boolean;
  /** Honour `tags` in a port POST (`tag-ports-during-bulk-creation`); Zed silently drops them. */
  tagsOnCreate: boolean;
  /** Delay before an os-interface detach takes effect (Nova's cast). */
  detachDelayMs: number;
  /** Delay between an attach answering and the NIC appearing in the guest (the data-path hook). */
  nicAppearDelayMs: number;
  /** Hot-plug PCI slots per server. */
  pciSlots: number;
  /** Legacy per-port fixed IP cap (removed in Pike); 0 = none. */
  maxFixedIpsPerPort: number;
  /** Seed for address allocation order. */
  seed: number;
}

export const DEFAULT_CONFIG: EmulatorConfig = {
  tokenTtlSeconds: 3600,
  routeLimit: 30,
  routeLimitMode: "RoutesExhausted",
  extraRouteAtomic: true,
  tagsOnCreate: false,
  detachDelayMs: 50,
  nicAppearDelayMs: 0,
  pciSlots: 28,
  maxFixedIpsPerPort: 0,
  seed: 1,
};

export interface FaultRule {
  id?: string;
  service?: ServiceName;
  method?: string;
  /** A regular expression matched against the path (after the service prefix). */
  path?: string;
  /**
   * latency: delay the answer; error: answer `status` with the service's error body; drop: close the
   * connection before processing; drop-after-commit: process, then close without answering;
   * stale-revision: another writer bumps the target's revision first (412 storms);
   * no-nic: an interface attach succeeds but no NIC ever appears in the guest.
   */
  kind: "latency" | "error" | "drop" | "drop-after-commit" | "stale-revision" | "no-nic";
  latencyMs?: number;
  status?: number;
  errorType?: string;
  message?: string;
  probability?: number;
  /** Fire this many more times, then retire (unlimited when absent). */
  remaining?: number;
}

/** What the emulator tells the data plane (the lab's kernel), if anything is listening. */
export interface DataPathHooks {
  attach?(server: ServerRec, port: Port): Promise<void>;
  detach?(server: ServerRec, port: Port): Promise<void>;
  routes?(router: Router): Promise<void>;
  /** The router's associated floating IPs changed: `fips` are all of them now. */
  floatingIps?(router: Router, fips: FloatingIp[]): Promise<void>;
}

export interface EmulatorOptions {
  config?: Partial<EmulatorConfig>;
  world?: World;
  hooks?: DataPathHooks;
  now?: () => number;
  /** Wait (detach and NIC delays, latency faults): real time by default; a test's fake clock. */
  delay?: (ms: number) => Promise<void>;
  /** Write the world here after every change. */
  stateFile?: string;
}

/** Counters per service, for tests and benchmarks. */
export interface Stats {
  requests: Record<string, number>;
}

const PREFIXES: Array<[string, ServiceName]> = [
  ["/v3", "identity"],
  ["/network", "network"],
  ["/compute/v2.1", "compute"],
  ["/openstack", "metadata"],
  ["/_tcnp", "admin"],
];

export class Emulator {
  world: World;
  config: EmulatorConfig;
  faults: FaultRule[] = [];
  hooks: DataPathHooks;
  readonly stats: Stats = { requests: {} };
  readonly now: () => number;
  readonly delay: (ms: number) => Promise<void>;
  random: () => number;
  #stateFile: string | undefined;
  #routes: Record<ServiceName, Route[]>;
  #faultSeq = 0;
  /** Background work (asynchronous detaches, NIC appearance) still in flight. */
  readonly pending = new Set<Promise<unknown>>();

  constructor(opts: EmulatorOptions = {}) {
    this.config = { ...DEFAULT_CONFIG, ...opts.config };
    this.world = opts.world ?? emptyWorld();
    this.hooks = opts.hooks ?? {};
    this.now = opts.now ?? Date.now;
    this.delay = opts.delay ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    // A world loaded from a state file continues with a different sequence (no repeated MACs).
    this.random = rng(
      opts.world === undefined
        ? this.config.seed
        : this.config.seed + Object.keys(this.world.ports).length * 7919 + (Date.now() % 100_000),
    );
    this.#stateFile = opts.stateFile;
    this.#routes = {
      identity: keystoneRoutes(this),
      network: neutronRoutes(this),
      compute: novaRoutes(this),
      metadata: metadataRoutes(this),
      admin: adminRoutes(this),
    };
  }

  /** The handler as an HttpFetch: what tests give the client. */
  readonly fetch = (req: HttpRequest): Promise<HttpResponse> => this.handle(req);

  /** Base URL of this cloud as seen by the caller. */
  baseUrl(req: HttpRequest): string {
    if (this.config.publicUrl !== undefined) return this.config.publicUrl.replace(/\/+$/, "");
    try {
      const u = new URL(req.url);
      return `${u.protocol}//${req.headers["host"] ?? u.host}`;
    } catch {
      return "http://localhost";
    }
  }

  addFault(f: FaultRule): FaultRule {
    const rule = { ...f, id: f.id ?? `fault-${++this.#faultSeq}` };
    this.faults.push(rule);
    return rule;
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** Expire every token now (the next request with one gets a 401). */
  expireTokens(): void {
    for (const t of Object.values(this.world.tokens)) t.expires_at = Math.min(t.expires_at, this.now() - 1);
  }

  /** Find a fault for this request and consume one use of it. */
  takeFault(service: ServiceName, method: string, path: string, kinds: FaultRule["kind"][]): FaultRule | undefined {
    for (const f of this.faults) {
      if (!kinds.includes(f.kind)) continue;
      if (f.service !== undefined && f.service !== service) continue;
      if (f.method !== undefined && f.method !== method) continue;
      if (f.path !== undefined && !new RegExp(f.path).test(path)) continue;
      if (f.probability !== undefined && this.random() >= f.probability) continue;
      if (f.remaining !== undefined) {
        if (f.remaining <= 0) continue;
        f.remaining--;
      }
      return f;
    }
    return undefined;
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p)).catch(() => {});
    return p;
  }

  /** Wait for background work (detaches, NIC appearance) to finish. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  persist(): void {
    if (this.#stateFile === undefined) return;
    const tmp = `${this.#stateFile}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ world: this.world, config: this.config }), { mode: 0o600 });
    fs.renameSync(tmp, this.#stateFile);
  }

  /** The token a request carries, if valid (not expired or revoked). */
  tokenOf(req: HttpRequest): TokenRec | undefined {
    return validToken(this, req.headers["x-auth-token"]);
  }

  async handle(req: HttpRequest): Promise<HttpResponse> {
    const url = new URL(req.url, "http://localhost");
    let service: ServiceName | undefined;
    let path = url.pathname;
    for (const [prefix, name] of PREFIXES) {
      if (path === prefix || path.startsWith(`${prefix}/`)) {
        service = name;
        path = name === "identity" ? path : path.slice(prefix.length) || "/";
        break;
      }
    }
    if (service === undefined) return neutronError(404, "HTTPNotFound", "The resource could not be found.");
    this.stats.requests[service] = (this.stats.requests[service] ?? 0) + 1;

    if (service !== "admin") {
      const lat = this.takeFault(service, req.method, path, ["latency"]);
      if (lat?.latencyMs !== undefined) await this.delay(lat.latencyMs);
      if (this.takeFault(service, req.method, path, ["drop"]) !== undefined)
        throw new NetworkError(req.method, req.url, "ECONNRESET");
      const err = this.takeFault(service, req.method, path, ["error"]);
      if (err !== undefined) return this.#faultReply(service, err);
    }

    const found = match(this.#routes[service], req.method, path);
    if (found === "no-path" || found === "bad-method") return this.#notFound(service, found, req);
    let body: unknown;
    if (req.body !== undefined && req.body !== "") {
      try {
        body = JSON.parse(req.body);
      } catch {
        return this.#render(
          service,
          new ApiError(400, service === "network" ? "HTTPBadRequest" : "BadRequest", "Malformed JSON in request body."),
          req,
        );
      }
    }
    const ctx: Ctx = { req, path, query: url.searchParams, params: found.params, body };
    const auth = this.#authenticate(service, req);
    if (auth !== undefined) return auth;
    let res: HttpResponse;
    try {
      res = await found.handler(ctx);
    } catch (e) {
      if (e instanceof ApiError) return this.#render(service, e, req);
      throw e;
    }
    if (req.method !== "GET") this.persist();
    if (service !== "admin" && this.takeFault(service, req.method, path, ["drop-after-commit"]) !== undefined) {
      throw new NetworkError(req.method, req.url, "ECONNRESET");
    }
    return res;
  }

  // Neutron and Nova sit behind keystonemiddleware: no valid token, no answer.
  #authenticate(service: ServiceName, req: HttpRequest): HttpResponse | undefined {
    if (service !== "network" && service !== "compute") return undefined;
    return this.tokenOf(req) === undefined ? middleware401(`${this.baseUrl(req)}/v3`) : undefined;
  }

  #render(service: ServiceName, e: ApiError, req: HttpRequest): HttpResponse {
    if (service === "compute") return novaError(e.status, e.message);
    if (service === "identity") return keystoneError(e.status, e.message, `${this.baseUrl(req)}/v3`);
    if (service === "metadata" || service === "admin") return json(e.status, { error: e.message });
    return neutronError(e.status, e.type, e.message);
  }

  #notFound(service: ServiceName, why: "no-path" | "bad-method", req: HttpRequest): HttpResponse {
    if (service === "compute") return novaError(why === "bad-method" ? 405 : 404, "The resource could not be found.");
    if (service === "identity")
      return keystoneError(404, "The resource could not be found.", `${this.baseUrl(req)}/v3`);
    return neutronError(
      why === "bad-method" ? 405 : 404,
      why === "bad-method" ? "HTTPMethodNotAllowed" : "HTTPNotFound",
      why === "bad-method"
        ? "The server could not comply with the request since it is either malformed or otherwise incorrect."
        : "The resource could not be found.",
    );
  }

  #faultReply(service: ServiceName, f: FaultRule): HttpResponse {
    const status = f.status ?? 500;
    if (service === "compute") {
      return novaError(
        status,
        f.message ??
          "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.\n<class 'nova.exception_Remote.InternalError'>",
      );
    }
    if (service === "identity")
      return keystoneError(
        status,
        f.message ?? "An unexpected error prevented the server from fulfilling your request.",
      );
    const type =
      f.errorType ??
      (status >= 500 ? "HTTPInternalServerError" : status === 503 ? "HTTPServiceUnavailable" : "HTTPBadRequest");
    return neutronError(
      status,
      type,
      f.message ?? "Request Failed: internal server error while processing your request.",
    );
  }
}
