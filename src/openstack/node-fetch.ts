// HttpFetch over node:http / node:https with keep-alive, a per-request timeout, optional CA bundle
// or insecure mode, and unix-socket URLs ("http+unix://%2Frun%2Fx.sock/path") for local clouds.
import * as fs from "node:fs";
import * as http from "node:http";
import type * as Https from "node:https";
import { NetworkError, type HttpFetch, type HttpRequest, type HttpResponse } from "./http.js";

export interface NodeFetchOptions {
  /** PEM file with the CA certificates to trust. */
  caCert?: string;
  insecure?: boolean;
  timeoutMs?: number;
}

export function nodeFetch(opts: NodeFetchOptions = {}): HttpFetch {
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  // TLS is loaded only for an https endpoint: most plugin runs never pay for it.
  let tlsAgent: Https.Agent | undefined;
  let httpsModule: typeof Https | undefined;
  const httpsAgent = (): Https.Agent => {
    if (tlsAgent === undefined) {
      httpsModule = process.getBuiltinModule("node:https");
      const tls: Https.AgentOptions = { keepAlive: true, maxSockets: 16 };
      if (opts.caCert !== undefined) tls.ca = fs.readFileSync(opts.caCert);
      if (opts.insecure === true) tls.rejectUnauthorized = false;
      tlsAgent = new httpsModule.Agent(tls);
    }
    return tlsAgent;
  };
  return (req: HttpRequest, call?: { timeoutMs?: number }): Promise<HttpResponse> =>
    new Promise((resolve, reject) => {
      const timeout = call?.timeoutMs ?? opts.timeoutMs ?? 30_000;
      let url: URL;
      let socketPath: string | undefined;
      try {
        if (req.url.startsWith("http+unix://")) {
          const rest = req.url.slice("http+unix://".length);
          const slash = rest.indexOf("/");
          socketPath = decodeURIComponent(slash < 0 ? rest : rest.slice(0, slash));
          url = new URL(`http://localhost${slash < 0 ? "/" : rest.slice(slash)}`);
        } else {
          url = new URL(req.url);
        }
      } catch (e) {
        reject(new NetworkError(req.method, req.url, "EINVALIDURL", { cause: e }));
        return;
      }
      const isHttps = url.protocol === "https:";
      const headers: Record<string, string | number> = { ...req.headers };
      if (req.body !== undefined) headers["content-length"] = Buffer.byteLength(req.body);
      const options: Https.RequestOptions = {
        method: req.method,
        hostname: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        headers,
        agent: socketPath !== undefined ? undefined : isHttps ? httpsAgent() : httpAgent,
      };
      if (socketPath !== undefined) options.socketPath = socketPath;
      const r = (isHttps ? httpsModule! : http).request(options, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const hdrs: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers))
            if (v !== undefined) hdrs[k] = Array.isArray(v) ? v.join(", ") : v;
          resolve({ status: res.statusCode ?? 0, headers: hdrs, body: Buffer.concat(chunks).toString("utf8") });
        });
        res.on("error", (e) =>
          reject(new NetworkError(req.method, req.url, (e as NodeJS.ErrnoException).code ?? "ERESPONSE", { cause: e })),
        );
      });
      r.setTimeout(timeout, () =>
        r.destroy(Object.assign(new Error(`no answer within ${timeout} ms`), { code: "ETIMEDOUT" })),
      );
      r.on("error", (e) =>
        reject(new NetworkError(req.method, req.url, (e as NodeJS.ErrnoException).code ?? "EREQUEST", { cause: e })),
      );
      if (req.body !== undefined) r.write(req.body);
      r.end();
    });
}
