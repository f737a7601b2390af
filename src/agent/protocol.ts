// The agent's socket protocol: one JSON object per line each way, one request per connection.
// A plugin request carries what a runtime gave the plugin (its name, environment and stdin) and
// gets back what the plugin would have written and its exit code.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";

export const DEFAULT_AGENT_SOCKET = "/run/tcnp/agent.sock";

export interface CniRequest {
  op: "cni";
  plugin: string;
  env: Record<string, string>;
  stdin: string;
}
export interface StatusRequest {
  op: "status";
}
export interface PodRequest {
  op: "pod";
  containerId: string;
  ifname: string;
}
export type AgentRequest = CniRequest | StatusRequest | PodRequest;

export interface CniResponse {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Send one request and read the one answer. Rejects when no agent answers on `socket`. */
export function askAgent(socket: string, req: AgentRequest, timeoutMs = 300_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(socket);
    let buf = "";
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`the agent on ${socket} did not answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    c.on("connect", () => c.write(`${JSON.stringify(req)}\n`));
    c.on("data", (d) => (buf += d.toString()));
    c.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    c.on("end", () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf) as unknown);
      } catch {
        reject(new Error(`the agent on ${socket} closed the connection without an answer`));
      }
    });
  });
}

/**
 * A socket the plugins may hand a request to: a socket owned by this user in a directory owned by
 * this user that no one else may write (anything else could be someone's trap).
 */
export function trustedSocket(socket: string): boolean {
  const uid = process.geteuid?.() ?? 0;
  try {
    const st = fs.lstatSync(socket);
    const dir = fs.statSync(path.dirname(socket));
    return st.isSocket() && st.uid === uid && dir.uid === uid && (dir.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/**
 * Hand a plugin request to the node agent, as the forwarder (forwarder/main.go) does:
 * "unreachable" when no agent takes it (the caller serves it itself), "lost" with why when the agent
 * took it and gave no answer (its outcome is unknown: the runtime's DEL cleans up).
 */
export function forwardToAgent(
  socket: string,
  req: CniRequest,
  timeoutMs = 600_000,
): Promise<CniResponse | { unreachable: true } | { lost: string }> {
  if (!trustedSocket(socket)) return Promise.resolve({ unreachable: true });
  return new Promise((resolve) => {
    const c = net.createConnection(socket);
    let sent = false;
    let buf = "";
    const connectTimer = setTimeout(() => c.destroy(new Error("connect timeout")), 2000);
    const timer = setTimeout(() => c.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    c.on("connect", () => {
      clearTimeout(connectTimer);
      c.write(`${JSON.stringify(req)}\n`, (e) => {
        if (e === undefined || e === null) sent = true;
      });
    });
    c.on("data", (d) => (buf += d.toString()));
    c.on("error", (e) => {
      clearTimeout(connectTimer);
      clearTimeout(timer);
      resolve(sent ? { lost: e.message } : { unreachable: true });
    });
    c.on("end", () => {
      clearTimeout(timer);
      try {
        const r = JSON.parse(buf) as Partial<CniResponse> & { error?: string };
        if (typeof r.exitCode === "number")
          return resolve({ exitCode: r.exitCode, stdout: r.stdout ?? "", stderr: r.stderr ?? "" });
        resolve({ lost: r.error ?? "the agent answered without an outcome" });
      } catch {
        resolve(
          sent
            ? { lost: "the agent closed the connection without an answer (restarted or killed?)" }
            : { unreachable: true },
        );
      }
    });
  });
}
