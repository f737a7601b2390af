// What a lab made, written as it is made (so `tcnp lab down` can undo a half-finished `up`):
// namespaces, processes (by PID, with a marker from their command line), pods, directories.
import * as fs from "node:fs";
import * as path from "node:path";
import type { RealCloudRecord } from "./real.js";

export interface LabProcess {
  name: string;
  pid: number;
  /** A string the process's command line must contain for us to signal it (PID reuse guard). */
  marker: string;
}

export interface LabPod {
  vm: string;
  mode: "mix" | "eni";
  /** Namespace name (the pod's netns is /var/run/netns/<ns>). */
  ns: string;
  containerId: string;
  podName: string;
  ip?: string;
  /** The floating IP the route controller's floating IP code associated with it (embedded cloud). */
  floatingIp?: string;
}

export interface LabState {
  dir: string;
  status: "building" | "up" | "failed";
  startedAt: string;
  namespaces: string[];
  processes: LabProcess[];
  vms: Array<{ name: string; serverId: string; ns: string; ip: string; dir: string }>;
  pods: LabPod[];
  cloudSocket?: string;
  authUrl?: string;
  controllerSocket?: string;
  /** With --cloud: what the lab made in the real OpenStack. */
  cloud?: RealCloudRecord;
  error?: string;
}

export const DEFAULT_LAB_DIR = "/run/tcnp-lab";
const file = (dir: string): string => path.join(dir, "lab.json");

export function readLab(dir: string): LabState | undefined {
  try {
    return JSON.parse(fs.readFileSync(file(dir), "utf8")) as LabState;
  } catch {
    return undefined;
  }
}

export function writeLab(s: LabState): void {
  fs.mkdirSync(s.dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(`${file(s.dir)}.tmp`, JSON.stringify(s, null, 2), { mode: 0o600 });
  fs.renameSync(`${file(s.dir)}.tmp`, file(s.dir));
}

/** Is this PID still the process we started? */
export function isOurs(p: LabProcess): boolean {
  try {
    const cmd = fs.readFileSync(`/proc/${p.pid}/cmdline`, "utf8").replace(/\0/g, " ");
    const stat = fs.readFileSync(`/proc/${p.pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && cmd.includes(p.marker);
  } catch {
    return false;
  }
}

/** Where a lab VM's node agent listens (a root-only directory of its own). */
export const agentSocket = (vm: { dir: string }): string => path.join(vm.dir, "agent", "agent.sock");
