// rtnetlink without a trip through the event loop per request: the netlink package's
// RtNetlinkSocket (its message formats and parsers) over a socket whose request() is one
// synchronous send and receive in tcnp's native addon (nlTransact). The kernel answers an
// rtnetlink request while it handles the send, so a request costs a few syscalls (~20 µs) where
// the package's own socket costs a timer and a poll turn of the event loop (~0.3 ms, measured by
// bench/agent.ts); a pod's ADD makes about twenty of them.
import { EventEmitter } from "node:events";
import * as fs from "node:fs";
import { getSystemErrorName } from "node:util";
import { formatMessage, parseError, parseMessages, type NetlinkMessage } from "netlink/dist/structs.js";
import { tcnpNative } from "../native/load.js";

const FLAG_REQUEST = 1;
const FLAG_ACK = 4;
const TYPE_ERROR = 2;
const TYPE_DONE = 3;

function rejected(errno: number): Error {
  let code = String(errno);
  try {
    code = getSystemErrorName(errno);
  } catch {
    // an errno Node does not name
  }
  // The form the netlink package rejects with (NetlinkKernel maps it to the errno).
  return new Error(`Request rejected: ${code}`);
}

/** The part of the package's NetlinkSocket that RtNetlinkSocket uses for requests. */
export class SyncNetlinkSocket extends EventEmitter {
  readonly #fd: number;
  #seq = 1;

  /** Opens the socket in the calling thread's current network namespace. */
  constructor() {
    super();
    this.#fd = tcnpNative().nlOpen();
  }

  request(
    type: number,
    data: Uint8Array | Uint8Array[],
    options?: { flags?: number },
  ): Promise<[NetlinkMessage[], Record<string, never>]> {
    const seq = this.#seq;
    this.#seq = (this.#seq % 0xffffffff) + 1;
    try {
      const flags = Number(options?.flags ?? 0) | FLAG_REQUEST | FLAG_ACK;
      const msg = Buffer.concat(formatMessage({ type, flags, seq, port: 0, data }));
      const out: NetlinkMessage[] = [];
      for (const datagram of tcnpNative().nlTransact(this.#fd, msg, seq)) {
        for (const m of parseMessages(datagram)) {
          if (m.seq !== seq || m.type === TYPE_DONE) continue;
          if (m.type === TYPE_ERROR) {
            const { errno } = parseError(m.data, m.flags);
            if (errno !== 0) return Promise.reject(rejected(errno));
            continue; // the ACK
          }
          out.push(m);
        }
      }
      return Promise.resolve([out, {}]);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  close(): void {
    fs.closeSync(this.#fd);
  }
}
