// The lab's node agents: one per VM, in the VM's namespace, with its socket, its HTTP endpoints
// (/healthz, /readyz, /metrics) and the environment to reach it by hand. `tcnp lab agent-restart`
// starts again one that died (nothing restarts it on its own, as nothing restarts a process on a
// node without a supervisor).
import * as path from "node:path";
import { askAgent } from "../agent/protocol.js";
import type { AgentStatus } from "../agent/start.js";
import { inNetns, startDaemon, stopProcess } from "./proc.js";
import { agentSocket, isOurs, type LabProcess, type LabState } from "./state.js";

/** Where a lab agent serves its HTTP endpoints, inside its VM's namespace. */
export const AGENT_LISTEN = "127.0.0.1:9798";

type Vm = LabState["vms"][number];

/** The environment tcnp needs, inside a VM's namespace, to talk to that VM's agent and records by hand. */
export function vmEnv(s: Pick<LabState, "dir">, vm: Vm): Record<string, string> {
  return {
    TCNP_AGENT_SOCKET: agentSocket(vm),
    TCNP_STATE_DIR: path.join(vm.dir, "state"),
    TCNP_LOCK_DIR: path.join(vm.dir, "locks"),
    CNI_CACHEDIR: path.join(vm.dir, "cache"),
    CNI_PATH: `${path.join(s.dir, "bin")}:/usr/lib/cni`,
  };
}

export const agentName = (vm: Vm): string => `agent ${vm.name}`;

export function startLabAgent(s: Pick<LabState, "dir">, vm: Vm, self: string[]): LabProcess {
  const sock = agentSocket(vm);
  const env = vmEnv(s, vm);
  return startDaemon(
    agentName(vm),
    inNetns(vm.ns, [
      ...self,
      "agent",
      "--socket",
      sock,
      "--conf-dir",
      path.join(vm.dir, "net.d-mix"),
      "--conf-dir",
      path.join(vm.dir, "net.d-eni"),
      "--state-dir",
      env["TCNP_STATE_DIR"]!,
      "--listen",
      AGENT_LISTEN,
      "--log-file",
      path.join(vm.dir, "agent.log"),
    ]),
    path.join(vm.dir, "agent.out"),
    `--socket ${sock}`,
    { TCNP_LOCK_DIR: env["TCNP_LOCK_DIR"]!, CNI_PATH: env["CNI_PATH"]! },
  );
}

/** Start again the agents of `names` (all that are not running when none is named). Returns what it did. */
export async function restartAgents(s: LabState, names: readonly string[], self: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const vm of s.vms) {
    const i = s.processes.findIndex((p) => p.name === agentName(vm));
    const cur = i < 0 ? undefined : s.processes[i]!;
    const running = cur !== undefined && isOurs(cur);
    if (names.length > 0 ? !names.includes(vm.name) : running) continue;
    if (running) await stopProcess(cur);
    const p = startLabAgent(s, vm, self);
    if (i < 0) s.processes.push(p);
    else s.processes[i] = p;
    out.push(`${vm.name}: agent started again (pid ${p.pid})`);
  }
  return out;
}

export interface AgentReport {
  vm: string;
  pid?: number;
  running: boolean;
  socket: string;
  metrics: string;
  answering: boolean;
  pools: AgentStatus["pools"];
  /** To run by hand inside the VM's namespace. */
  env: Record<string, string>;
}

export async function agentReports(s: LabState): Promise<AgentReport[]> {
  const out: AgentReport[] = [];
  for (const vm of s.vms) {
    const p = s.processes.find((x) => x.name === agentName(vm));
    const st = (await askAgent(agentSocket(vm), { op: "status" }, 5000).catch(() => undefined)) as
      AgentStatus | undefined;
    out.push({
      vm: vm.name,
      ...(p === undefined ? {} : { pid: p.pid }),
      running: p !== undefined && isOurs(p),
      socket: agentSocket(vm),
      metrics: `http://${AGENT_LISTEN}/metrics (in namespace ${vm.ns})`,
      answering: st !== undefined,
      pools: st?.pools ?? [],
      env: vmEnv(s, vm),
    });
  }
  return out;
}
