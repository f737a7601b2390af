// Make services this process reaches (a real cloud on the machine's loopback, or elsewhere) reachable
// at the same addresses from inside a namespace, without touching any routing: a listener inside the
// namespace on HOST:PORT (HOST added to the namespace's loopback unless it is 127.x) whose
// connections this process opens, from its own namespace, to HOST:PORT.
import * as net from "node:net";
import { boundInNetns } from "../cloud/serve.js";
import { isKernelError, type Kernel } from "../kernel/types.js";

export interface Target {
  host: string;
  port: number;
}

export interface Relay {
  close(): Promise<void>;
}

export async function relayIntoNetns(ns: string, targets: Target[], kernel?: Kernel): Promise<Relay> {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  for (const t of targets) {
    if (!t.host.startsWith("127.")) {
      if (kernel === undefined)
        throw new Error(`Cannot relay ${t.host}:${t.port} into ${ns}: only loopback addresses without a kernel`);
      try {
        await kernel.addAddress(ns, { cidr: `${t.host}/32`, dev: "lo" });
      } catch (e) {
        if (!isKernelError(e, "EEXIST")) throw e;
      }
    }
    const srv = net.createServer((inside) => {
      const outside = net.connect(t.port, t.host);
      sockets.add(inside);
      sockets.add(outside);
      inside.pipe(outside).pipe(inside);
      const done = (): void => {
        inside.destroy();
        outside.destroy();
        sockets.delete(inside);
        sockets.delete(outside);
      };
      inside.on("error", done).on("close", done);
      outside.on("error", done).on("close", done);
    });
    await new Promise<void>((r) => srv.listen(boundInNetns(ns, t.host, t.port) as net.Server, () => r()));
    servers.push(srv);
  }
  return {
    close: async () => {
      for (const s of sockets) s.destroy();
      for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    },
  };
}

/** host:port of an endpoint URL (http default 80, https 443). */
export function targetOf(url: string): Target {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return { host, port: u.port !== "" ? Number(u.port) : u.protocol === "https:" ? 443 : 80 };
}
