// Serve an emulator on sockets: TCP addresses ("127.0.0.1:8774", "[::1]:80") and unix sockets
// ("unix:/run/tcnp/cloud.sock"). A "drop" fault closes the connection without an answer.
import * as fs from "node:fs";
import * as http from "node:http";
import { withNetns } from "../kernel/netns.js";
import { NetworkError } from "../openstack/http.js";
import type { Emulator } from "./emulator.js";

export interface Served {
  addresses: string[];
  close(): Promise<void>;
}

// net.Server#listen binds on a later tick, after the thread has left the namespace, so bind a TCP
// handle synchronously inside it and hand that to listen(). tcp_wrap is Node's own binding (it is
// what net uses); only test and lab tooling calls this, never the plugin path.
export function boundInNetns(ns: string, host: string, port: number): unknown {
  const binding = (
    process as unknown as {
      binding(name: string): {
        TCP: new (type: number) => {
          bind(h: string, p: number): number;
          bind6(h: string, p: number, f: number): number;
        };
        constants: { SERVER: number };
      };
    }
  ).binding("tcp_wrap");
  return withNetns(ns, () => {
    const h = new binding.TCP(binding.constants.SERVER);
    const rc = host.includes(":") ? h.bind6(host, port, 0) : h.bind(host, port);
    if (rc !== 0) throw new Error(`Cannot bind ${host}:${port} in ${ns}: error ${rc}`);
    return h;
  });
}

function parseListen(a: string): { path: string } | { host: string; port: number } {
  if (a.startsWith("unix:")) return { path: a.slice(5) };
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(a);
  if (m === null) throw new Error(`Cannot listen on "${a}": expected HOST:PORT or unix:PATH`);
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * Serve on each address. With `netns`, TCP listeners are created inside that namespace (the socket
 * belongs to the namespace of the thread that creates it); the emulator itself stays in this process.
 */
export async function serve(em: Emulator, listens: string[], opts: { netns?: string } = {}): Promise<Served> {
  const servers: http.Server[] = [];
  const addresses: string[] = [];
  for (const l of listens) {
    const target = parseListen(l);
    const srv = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers))
          if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(", ") : v;
        const body = Buffer.concat(chunks).toString("utf8");
        const host = headers["host"] ?? "localhost";
        em.handle({
          method: req.method ?? "GET",
          url: `http://${host}${req.url ?? "/"}`,
          headers,
          ...(body === "" ? {} : { body }),
          ...(req.socket.remoteAddress === undefined ? {} : { remoteAddress: req.socket.remoteAddress }),
        })
          .then((r) => {
            res.writeHead(r.status, r.headers);
            res.end(r.body);
          })
          .catch((e: unknown) => {
            if (e instanceof NetworkError) {
              req.socket.destroy();
              return;
            }
            res.writeHead(500, { "content-type": "application/json" });
            res.end(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
          });
      });
    });
    srv.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      srv.once("error", reject);
      if ("path" in target) {
        fs.rmSync(target.path, { force: true });
        srv.listen(target.path, () => resolve());
      } else if (opts.netns !== undefined) {
        srv.listen(boundInNetns(opts.netns, target.host, target.port), () => resolve());
      } else {
        srv.listen(target.port, target.host, () => resolve());
      }
    });
    const a = srv.address();
    addresses.push(
      typeof a === "string"
        ? `unix:${a}`
        : a === null
          ? l
          : `${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`,
    );
    servers.push(srv);
  }
  return {
    addresses,
    close: async () => {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    },
  };
}
