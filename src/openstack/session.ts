// An authenticated OpenStack session: a cached token (shared between processes), the catalog's
// endpoints, one re-authentication on 401, and bounded retries of transient failures.
import type { Logger } from "../log/logger.js";
import type { Clock } from "../base/clock.js";
import type { Lock } from "../state/lock.js";
import { OpenStackError, parseErrorBody, type Service } from "./errors.js";
import { jsonHeaders, NetworkError, type HttpFetch, type HttpResponse } from "./http.js";
import { authenticate, endpointFor, type AuthConfig, type Token } from "./keystone.js";
import { tokenKey, type TokenStore } from "./token-cache.js";

export interface SessionOptions {
  auth: AuthConfig;
  fetch: HttpFetch;
  tokens: TokenStore;
  lock: Lock;
  clock: Clock;
  log?: Logger;
  timeoutMs?: number;
  /** Renew this long before expiry (keystoneauth uses 120 s). */
  refreshMarginMs?: number;
  /** Use these instead of the catalog's endpoints. */
  endpoints?: Partial<Record<"network" | "compute", string>>;
  /** How many times to retry a transient failure of a request marked retryable. */
  retries?: number;
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Statuses that count as success (default: any 2xx). */
  expect?: number[];
  /** Retry network errors and 502/503/504 (default: GET only). */
  retry?: boolean;
}

export interface Reply<T> {
  status: number;
  headers: Record<string, string>;
  body: T;
}

const SERVICE_TYPE: Record<Exclude<Service, "identity" | "metadata">, string> = {
  network: "network",
  compute: "compute",
};

export class OpenStackSession {
  readonly #o: SessionOptions;
  readonly #key: string;
  #token: Token | undefined;
  /** Requests sent, by service (for benchmarks and the controller's metrics). */
  readonly calls = { identity: 0, network: 0, compute: 0 };

  constructor(o: SessionOptions) {
    this.#o = o;
    this.#key = tokenKey(o.auth);
  }

  get auth(): AuthConfig {
    return this.#o.auth;
  }

  #valid(t: Token | undefined): t is Token {
    return t !== undefined && t.expiresAt - (this.#o.refreshMarginMs ?? 120_000) > this.#o.clock.now();
  }

  /** A valid token: this process's, else the shared cache's, else a new one (under the lock). */
  async token(): Promise<Token> {
    if (this.#valid(this.#token)) return this.#token;
    const cached = this.#o.tokens.get(this.#key);
    if (this.#valid(cached)) return (this.#token = cached);
    return this.#o.lock.withLock(
      `token-${this.#key}`,
      async () => {
        const again = this.#o.tokens.get(this.#key);
        if (this.#valid(again)) return (this.#token = again);
        this.calls.identity++;
        const t = await authenticate(
          this.#o.fetch,
          this.#o.auth,
          this.#o.timeoutMs === undefined ? {} : { timeoutMs: this.#o.timeoutMs },
        );
        this.#o.tokens.put(this.#key, t);
        this.#o.log?.debug("authenticated", {
          authUrl: this.#o.auth.authUrl,
          expiresAt: new Date(t.expiresAt).toISOString(),
        });
        return (this.#token = t);
      },
      { timeoutMs: 60_000 },
    );
  }

  #dropToken(stale: Token): void {
    this.#token = undefined;
    if (this.#o.tokens.get(this.#key)?.id === stale.id) this.#o.tokens.drop(this.#key);
  }

  endpoint(service: "network" | "compute", token: Token): string {
    const o = this.#o.endpoints?.[service];
    if (o !== undefined) return o.replace(/\/+$/, "");
    return endpointFor(token.catalog, SERVICE_TYPE[service], this.#o.auth.interface, this.#o.auth.region);
  }

  async request<T>(
    service: "network" | "compute",
    method: string,
    path: string,
    opts: RequestOptions = {},
  ): Promise<Reply<T>> {
    const retryable = opts.retry ?? method === "GET";
    const attempts = retryable ? 1 + (this.#o.retries ?? 2) : 1;
    let reauthed = false;
    for (let attempt = 1; ; attempt++) {
      const token = await this.token();
      let res: HttpResponse;
      try {
        this.calls[service]++;
        res = await this.#o.fetch(
          {
            method,
            url: `${this.endpoint(service, token)}${path}`,
            headers: jsonHeaders({
              "x-auth-token": token.id,
              ...(service === "compute" ? { "openstack-api-version": "compute 2.1" } : {}),
              ...opts.headers,
            }),
            ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
          },
          this.#o.timeoutMs === undefined ? {} : { timeoutMs: this.#o.timeoutMs },
        );
      } catch (e) {
        if (e instanceof NetworkError && attempt < attempts) {
          await this.#o.clock.sleep(backoff(attempt));
          continue;
        }
        throw e;
      }
      if (res.status === 401 && !reauthed) {
        // The token expired or was revoked early: renew once and resend.
        reauthed = true;
        this.#dropToken(token);
        this.#o.log?.info("token rejected, re-authenticating", { service, path });
        attempt--;
        continue;
      }
      const ok = opts.expect === undefined ? res.status >= 200 && res.status < 300 : opts.expect.includes(res.status);
      if (!ok) {
        if ((res.status === 502 || res.status === 503 || res.status === 504) && attempt < attempts) {
          await this.#o.clock.sleep(backoff(attempt));
          continue;
        }
        const { type, detail } = parseErrorBody(res.status, res.body);
        const rid = res.headers["x-openstack-request-id"] ?? res.headers["x-compute-request-id"];
        const f = { service, method, path: path.split("?")[0]!, status: res.status, type, detail };
        throw new OpenStackError(rid === undefined ? f : { ...f, requestId: rid });
      }
      let body: unknown;
      if (res.body !== "" && res.body !== "null") {
        try {
          body = JSON.parse(res.body);
        } catch (e) {
          throw new OpenStackError(
            { service, method, path, status: res.status, type: "BadResponse", detail: "response body is not JSON" },
            { cause: e },
          );
        }
      }
      return { status: res.status, headers: res.headers, body: body as T };
    }
  }
}

const backoff = (attempt: number): number => Math.min(2000, 100 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);

/** Build a query string; arrays repeat the key (Neutron ORs repeated filters). */
export function query(params: Record<string, string | number | boolean | ReadonlyArray<string> | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    for (const x of Array.isArray(v) ? v : [v]) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(x))}`);
  }
  return parts.length === 0 ? "" : `?${parts.join("&")}`;
}
