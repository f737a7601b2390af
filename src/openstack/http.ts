// HTTP as plain values. The client takes an injected `HttpFetch`; in production it is node:http(s)
// (the global fetch costs ~100 ms of start-up on Node 20), in tests the emulator's handler.

export interface HttpRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  /** The peer address as a server sees it (set by the emulator's socket adapter and by tests). */
  remoteAddress?: string;
}

export interface HttpResponse {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string>;
  body: string;
}

export interface FetchOptions {
  timeoutMs?: number;
}

export type HttpFetch = (req: HttpRequest, opts?: FetchOptions) => Promise<HttpResponse>;

/** The request never got an HTTP answer: refused, reset, timed out, DNS. Always worth a retry later. */
export class NetworkError extends Error {
  readonly method: string;
  readonly url: string;
  readonly code: string;
  constructor(method: string, url: string, code: string, options?: { cause?: unknown }) {
    super(
      `Cannot ${method} ${redactUrl(url)}: ${code}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "NetworkError";
    this.method = method;
    this.url = url;
    this.code = code;
  }
}

/** URLs never carry secrets in OpenStack APIs, but strip userinfo and query values to be sure. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    for (const k of [...u.searchParams.keys()]) if (/token|secret|pass/i.test(k)) u.searchParams.set(k, "***");
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//");
  }
}

export const jsonHeaders = (extra: Record<string, string> = {}): Record<string, string> => ({
  "content-type": "application/json",
  accept: "application/json",
  ...extra,
});
