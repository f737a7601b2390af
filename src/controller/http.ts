// /healthz and /metrics for the controller.
import * as http from "node:http";
import type { Metrics } from "./metrics.js";

export interface Health {
  healthy(): { ok: boolean; detail: string };
}

export async function serveControllerHttp(listen: string, metrics: Metrics, health: Health): Promise<{ address: string; close(): Promise<void> }> {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(listen);
  if (m === null) throw new Error(`Cannot listen on "${listen}": expected HOST:PORT`);
  const srv = http.createServer((req, res) => {
    if (req.url === "/metrics") {
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      res.end(metrics.render());
    } else if (req.url === "/healthz") {
      const h = health.healthy();
      res.writeHead(h.ok ? 200 : 503, { "content-type": "text/plain" });
      res.end(`${h.detail}\n`);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(Number(m[2]), m[1], () => resolve());
  });
  const a = srv.address();
  return {
    address: typeof a === "object" && a !== null ? `${a.address}:${a.port}` : listen,
    close: () => new Promise((r) => srv.close(() => r())),
  };
}
