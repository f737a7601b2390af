// The agent's root-only unix socket: the plugins' requests come in here. The socket's directory is
// created 0700 (or must already be root's and closed to others) and the socket is 0600, so only
// root reaches it; a socket file left by a dead agent is replaced, a live agent's never.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import type { Logger } from "../log/logger.js";
import { tcnpNative } from "../native/load.js";
import { askAgent, type AgentRequest, type CniRequest, type CniResponse } from "./protocol.js";

export interface AgentHandlers {
  cni(req: CniRequest): Promise<CniResponse>;
  status(): unknown;
  pod(containerId: string, ifname: string): unknown;
}

export interface AgentSocket {
  close(): Promise<void>;
  /** Requests being served now. */
  inFlight(): number;
}

async function claimPath(socket: string): Promise<void> {
  const dir = path.dirname(socket);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.statSync(dir);
  if (st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0)
    throw new Error(`Refusing to serve on ${socket}: ${dir} must be owned by this user and writable by no one else`);
  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(socket);
  } catch {
    return;
  }
  if (!existing.isSocket()) throw new Error(`Refusing to serve on ${socket}: a file that is not a socket is there`);
  const alive = await askAgent(socket, { op: "status" }, 2000).then(
    () => true,
    () => false,
  );
  if (alive) throw new Error(`Another tcnp agent answers on ${socket}`);
  fs.rmSync(socket, { force: true });
}

/** A peer the agent serves: this user, and (where its process is visible) allowed to configure networks. */
export function peerAllowed(fd: number | undefined): string | undefined {
  if (fd === undefined) return "its credentials cannot be read";
  const [pid, uid] = tcnpNative().peerCred(fd);
  const me = process.geteuid?.() ?? 0;
  if (uid !== me) return `it runs as uid ${uid}, not ${me}`;
  if (pid <= 0) return undefined; // in a PID namespace this one cannot see: uid alone
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    // CAP_NET_ADMIN (12): what a CNI plugin needs to do its work itself; a root process whose
    // capabilities were dropped (a container's) has not got it, and is not served.
    if (eff !== undefined && (BigInt(`0x${eff}`) & (1n << 12n)) === 0n) return `process ${pid} lacks CAP_NET_ADMIN`;
  } catch {
    // gone already, or not visible: uid alone
  }
  return undefined;
}

export interface SocketLimits {
  /** Connections served at once; one beyond is answered "busy" (code 11) at once. */
  maxConnections: number;
  /** How long a connection may take to send its request. */
  idleMs: number;
}

const BUSY: CniResponse = {
  exitCode: 1,
  stdout: `${JSON.stringify({ cniVersion: "0.4.0", code: 11, msg: "Try again later", details: "the tcnp node agent is serving as many requests as it takes at once" })}\n`,
  stderr: "",
};

export async function serveAgentSocket(
  socket: string,
  h: AgentHandlers,
  log: Logger,
  limits: SocketLimits = { maxConnections: 512, idleMs: 10_000 },
): Promise<AgentSocket> {
  await claimPath(socket);
  let active = 0;
  let open = 0;
  const srv = net.createServer((c) => {
    open++;
    c.once("close", () => open--);
    let buf = "";
    let started = false;
    c.on("error", () => {});
    // A client that connects and says nothing is let go: it would hold a place others need.
    c.setTimeout(limits.idleMs, () => {
      if (!started) c.destroy();
    });
    const refused = peerAllowed((c as unknown as { _handle?: { fd?: number } })._handle?.fd);
    c.on("data", (d) => {
      if (started) return;
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl < 0) {
        if (buf.length > 4 << 20) c.destroy();
        return;
      }
      started = true;
      c.setTimeout(0);
      void (async () => {
        let answer: unknown;
        let counted = false;
        try {
          const req = JSON.parse(buf.slice(0, nl)) as AgentRequest;
          if (refused !== undefined) {
            log.warn("refused a request from a peer it does not serve", { why: refused, op: req.op });
            answer = { error: `the tcnp agent does not serve this peer: ${refused}` };
          } else if (open > limits.maxConnections) answer = req.op === "cni" ? BUSY : { error: "busy" };
          else {
            // in flight: the plugins' requests (a status request is not one of them)
            if (req.op === "cni") {
              active++;
              counted = true;
            }
            answer =
              req.op === "status"
                ? h.status()
                : req.op === "pod"
                  ? await h.pod(req.containerId, req.ifname)
                  : req.op === "cni"
                    ? await h.cni(req)
                    : { error: "unknown op" };
          }
        } catch (e) {
          log.error("agent request failed", { error: e });
          answer = { error: "the agent could not read the request" };
        } finally {
          if (counted) active--;
        }
        c.end(`${JSON.stringify(answer)}\n`);
      })();
    });
  });
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    const old = process.umask(0o177);
    srv.listen(socket, () => {
      process.umask(old);
      resolve();
    });
  });
  fs.chmodSync(socket, 0o600);
  return {
    inFlight: () => active,
    // Stops accepting; resolves once every connection (each one request) has ended.
    close: () => new Promise<void>((r) => srv.close(() => r())),
  };
}
