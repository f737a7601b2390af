// Small request/response helpers for the emulator: a path router, JSON replies, and each service's
// own error body, word for word (research/openstack-api.md, research/realcloud.md §6).
import { randomUUID } from "node:crypto";
import type { HttpRequest, HttpResponse } from "../openstack/http.js";

export interface Ctx {
  req: HttpRequest;
  /** Path without the service prefix and without the query string. */
  path: string;
  query: URLSearchParams;
  params: string[];
  body: unknown;
}

export type Handler = (c: Ctx) => Promise<HttpResponse> | HttpResponse;
export interface Route {
  method: string;
  re: RegExp;
  handler: Handler;
}

export const route = (method: string, pattern: string, handler: Handler): Route => ({
  method,
  re: new RegExp(`^${pattern.replace(/:\w+/g, "([^/]+)")}/?$`),
  handler,
});

export function match(
  routes: readonly Route[],
  method: string,
  path: string,
): { handler: Handler; params: string[] } | "no-path" | "bad-method" {
  let pathSeen = false;
  for (const r of routes) {
    const m = r.re.exec(path);
    if (m === null) continue;
    pathSeen = true;
    if (r.method === method) return { handler: r.handler, params: m.slice(1).map((p) => decodeURIComponent(p)) };
  }
  return pathSeen ? "bad-method" : "no-path";
}

export const reqId = (): string => `req-${randomUUID()}`;

export function json(status: number, body: unknown, headers: Record<string, string> = {}): HttpResponse {
  return {
    status,
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? "" : JSON.stringify(body),
  };
}

export const empty = (status: number, headers: Record<string, string> = {}): HttpResponse => ({
  status,
  headers,
  body: "",
});

/** An error the handlers throw; the service front-end renders it in its own body format. */
export class ApiError extends Error {
  readonly status: number;
  readonly type: string;
  constructor(status: number, type: string, message: string) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

export const neutronError = (status: number, type: string, message: string): HttpResponse =>
  json(status, { NeutronError: { type, message, detail: "" } }, { "x-openstack-request-id": reqId() });

const NOVA_FAULT: Record<number, string> = {
  400: "badRequest",
  401: "unauthorized",
  403: "forbidden",
  404: "itemNotFound",
  405: "badMethod",
  409: "conflictingRequest",
  413: "overLimit",
  429: "overLimit",
  415: "badMediaType",
  501: "notImplemented",
  503: "serviceUnavailable",
};
export const novaError = (status: number, message: string): HttpResponse => {
  const id = reqId();
  return json(
    status,
    { [NOVA_FAULT[status] ?? "computeFault"]: { code: status, message } },
    { "x-openstack-request-id": id, "x-compute-request-id": id },
  );
};

const KEYSTONE_TITLE: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  500: "Internal Server Error",
};
export const keystoneError = (status: number, message: string, authUri?: string): HttpResponse =>
  json(
    status,
    { error: { code: status, title: KEYSTONE_TITLE[status] ?? "Error", message } },
    status === 401 && authUri !== undefined ? { "www-authenticate": `Keystone uri="${authUri}"` } : {},
  );

export const UNAUTHORIZED_MSG = "The request you have made requires authentication.";

/** The 401 keystonemiddleware sends for a missing, expired or revoked token. */
export const middleware401 = (authUri: string): HttpResponse => keystoneError(401, UNAUTHORIZED_MSG, authUri);

/** Python's repr() of route dicts, as Neutron prints them inside messages. */
export function pyRepr(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(", ")}]`;
  if (v === null || v === undefined) return "None";
  if (typeof v === "string") return `'${v}'`;
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "object")
    return `{${Object.entries(v)
      .map(([k, x]) => `'${k}': ${pyRepr(x)}`)
      .join(", ")}}`;
  return String(v);
}

/** A deterministic PRNG (mulberry32) so allocation order is reproducible in tests. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const nowIso = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
export const nowNeutron = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
