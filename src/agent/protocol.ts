// The agent's socket protocol: one JSON object per line each way, one request per connection.
// A plugin request carries what a runtime gave the plugin (its name, environment and stdin) and
// gets back what the plugin would have written and its exit code.
import * as net from "node:net";

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
