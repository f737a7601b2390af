// Make the machine's loopback services (the real cloud on 127.0.0.1) reachable at the same
// addresses from inside a namespace, without touching any routing: a listener inside the namespace
// on 127.0.0.1:PORT whose connections this process opens, from its own namespace, to 127.0.0.1:PORT.
import * as net from "node:net";
import { boundInNetns } from "../../src/cloud/serve.js";

export async function proxyLoopback(ns: string, ports: number[]): Promise<{ close(): Promise<void> }> {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  for (const port of ports) {
    const srv = net.createServer((inside) => {
      const outside = net.connect(port, "127.0.0.1");
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
    await new Promise<void>((r) => srv.listen(boundInNetns(ns, "127.0.0.1", port) as net.Server, () => r()));
    servers.push(srv);
  }
  return {
    close: async () => {
      for (const s of sockets) s.destroy();
      for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    },
  };
}
