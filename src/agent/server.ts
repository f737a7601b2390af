// The agent's root-only unix socket: the plugins' requests come in here. The socket's directory is
// created 0700 (or must already be root's and closed to others) and the socket is 0600, so only
// root reaches it; a socket file left by a dead agent is replaced, a live agent's never.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import type { Logger } from "../log/logger.js";
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

export async function serveAgentSocket(socket: string, h: AgentHandlers, log: Logger): Promise<AgentSocket> {
  await claimPath(socket);
  let active = 0;
  const srv = net.createServer((c) => {
    let buf = "";
    let started = false;
    c.on("error", () => {});
    c.on("data", (d) => {
      if (started) return;
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl < 0) {
        if (buf.length > 4 << 20) c.destroy();
        return;
      }
      started = true;
      void (async () => {
        let answer: unknown;
        let counted = false;
        try {
          const req = JSON.parse(buf.slice(0, nl)) as AgentRequest;
          // in flight: the plugins' requests (a status request is not one of them)
          if (req.op === "cni") {
            active++;
            counted = true;
          }
          answer =
            req.op === "status"
              ? h.status()
              : req.op === "pod"
                ? h.pod(req.containerId, req.ifname)
                : req.op === "cni"
                  ? await h.cni(req)
                  : { error: "unknown op" };
        } catch (e) {
          log.error("agent request failed", { error: e });
          answer = { error: e instanceof Error ? e.message : String(e) };
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
