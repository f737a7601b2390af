// The machine's loopback services (the real cloud on 127.0.0.1) reachable at the same addresses from
// inside a namespace (src/lab/relay.ts).
import { relayIntoNetns, type Relay } from "../../src/lab/relay.js";

export const proxyLoopback = (ns: string, ports: number[]): Promise<Relay> =>
  relayIntoNetns(
    ns,
    ports.map((port) => ({ host: "127.0.0.1", port })),
  );
