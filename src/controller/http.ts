// /healthz and /metrics for the controller.
import * as fs from "node:fs";
import * as http from "node:http";
import type { Metrics } from "./metrics.js";

export interface Health {
  healthy(): { ok: boolean; detail: string };
  /** /readyz, where the process has a notion of ready (the node agent: pools warm). */
  ready?(): { ok: boolean; detail: string };
}

export async function serveControllerHttp(
  listen: string,
  metrics: Metrics,
  health: Health,
): Promise<{ address: string; close(): Promise<void> }> {
  const unix = listen.startsWith("unix:") ? listen.slice(5) : undefined;
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(listen);
  if (unix === undefined && m === null)
    throw new Error(`Cannot listen on "${listen}": expected HOST:PORT or unix:PATH`);
  const srv = http.createServer((req, res) => {
    if (req.url === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(metrics.render());
    } else if (req.url === "/healthz" || (req.url === "/readyz" && health.ready !== undefined)) {
      const h = req.url === "/readyz" ? health.ready!() : health.healthy();
      res.writeHead(h.ok ? 200 : 503, { "content-type": "text/plain" });
      res.end(`${h.detail}\n`);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    if (unix !== undefined) {
      // Only a socket left by an earlier run is replaced; any other file at PATH is not ours to remove.
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(unix);
      } catch {
        st = undefined;
      }
      if (st !== undefined && !st.isSocket()) {
        reject(new Error(`Cannot listen on "${listen}": ${unix} exists and is not a socket`));
        return;
      }
      if (st !== undefined) fs.rmSync(unix, { force: true });
      srv.listen(unix, () => resolve());
    } else {
      srv.listen(Number(m![2]), m![1], () => resolve());
    }
  });
  const a = srv.address();
  return {
    address:
      typeof a === "object" && a !== null ? `${a.address}:${a.port}` : typeof a === "string" ? `unix:${a}` : listen,
    close: () => new Promise((r) => srv.close(() => r())),
  };
}
