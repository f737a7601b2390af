// An answer from an OpenStack service that was not a success, with the service's own error type.
import { NetworkError } from "./http.js";

export type Service = "identity" | "network" | "compute" | "metadata";

export interface OpenStackErrorFields {
  service: Service;
  method: string;
  /** Path without the endpoint prefix, e.g. "/v2.0/ports/ab12". */
  path: string;
  status: number;
  /** Neutron's NeutronError.type, Nova's fault name, or Keystone's error title. */
  type: string;
  /** The service's message (never contains request secrets). */
  detail: string;
  requestId?: string;
}

export class OpenStackError extends Error {
  readonly service: Service;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly type: string;
  readonly detail: string;
  readonly requestId: string | undefined;
  constructor(f: OpenStackErrorFields, options?: { cause?: unknown }) {
    const rid = f.requestId === undefined ? "" : ` [${f.requestId}]`;
    super(
      `${f.method} ${f.path} (${f.service}) failed: ${f.status} ${f.type}: ${f.detail}${rid}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "OpenStackError";
    this.service = f.service;
    this.method = f.method;
    this.path = f.path;
    this.status = f.status;
    this.type = f.type;
    this.detail = f.detail;
    this.requestId = f.requestId;
  }
}

/** The cloud configuration is wrong (a credential field, clouds.yaml, the catalog): the operator must fix it. */
export class CloudConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CloudConfigError";
  }
}

export const isOpenStackError = (e: unknown, type?: string, status?: number): e is OpenStackError =>
  e instanceof OpenStackError &&
  (type === undefined || e.type === type) &&
  (status === undefined || e.status === status);

/**
 * A failure that may pass if tried again later: no answer at all, a 5xx or 429, and — where the
 * caller's own write can collide with another's (`conflict`) — a 409.
 */
export function isTransient(e: unknown, opts: { conflict?: boolean } = {}): boolean {
  if (e instanceof NetworkError) return true;
  if (!(e instanceof OpenStackError)) return false;
  return e.status >= 500 || e.status === 429 || (opts.conflict === true && e.status === 409);
}

/** Read the error type and message out of any of the three services' error bodies. */
export function parseErrorBody(status: number, body: string): { type: string; detail: string } {
  try {
    const j = JSON.parse(body) as Record<string, unknown>;
    const ne = j["NeutronError"] as Record<string, unknown> | undefined;
    if (ne !== undefined && typeof ne === "object" && ne !== null)
      return { type: String(ne["type"] ?? "NeutronError"), detail: String(ne["message"] ?? "") };
    const ke = j["error"] as Record<string, unknown> | undefined;
    if (ke !== undefined && typeof ke === "object" && ke !== null)
      return { type: String(ke["title"] ?? "Error"), detail: String(ke["message"] ?? "") };
    for (const [k, v] of Object.entries(j)) {
      if (typeof v === "object" && v !== null && "message" in v)
        return { type: k, detail: String((v as Record<string, unknown>)["message"]) };
    }
  } catch {
    // not JSON (a proxy's HTML page, or empty)
  }
  const text = body
    .replace(/<[^>]*>/g, " ")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 200);
  return { type: `HTTP${status}`, detail: text === "" ? "(no body)" : text };
}
