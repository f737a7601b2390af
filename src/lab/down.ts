// `tcnp lab down` and `tcnp lab status`: undo everything a lab recorded (also a half-built one),
// and say whether one is up.
import * as fs from "node:fs";
import type { Io } from "../base/io.js";
import { namedNetns, type Kernel } from "../kernel/types.js";
import { cni } from "./up.js";
import { deprovision, realClients } from "./real.js";
import { LAB } from "./spec.js";
import { run } from "./proc.js";
import { agentReports } from "./agents.js";
import { DEFAULT_LAB_DIR, isOurs, readLab, type LabState } from "./state.js";
import { stopProcess } from "./proc.js";

async function strayNamespaces(): Promise<string[]> {
  const r = await run(["ip", "netns", "list"]);
  return r.stdout
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => n.startsWith(`${LAB.prefix}-`));
}

export async function labDown(o: { dir: string; io: Io; kernel: Kernel; cnicaller: string }): Promise<number> {
  const s = readLab(o.dir);
  let cloudError: string | undefined;
  const say = (m: string): void => o.io.out(`[lab down] ${m}\n`);
  if (s !== undefined) {
    // Pods first, through the same CNI caller, while the cloud still answers (ports, addresses).
    const cloudUp = s.processes.some((p) => (p.name === "cloud" || p.name === "agent") && isOurs(p));
    for (const pod of [...s.pods].reverse()) {
      const vm = s.vms.find((v) => v.name === pod.vm);
      if (vm === undefined || !cloudUp) continue;
      const r = await cni({ dir: s.dir, cnicaller: o.cnicaller }, vm, pod, "del");
      say(`DEL ${pod.podName}: ${r.code === 0 ? "ok" : (r.stderr.trim() || r.stdout.trim()).split("\n").pop()}`);
    }
    for (const p of [...s.processes].reverse()) say(`${p.name} (pid ${p.pid}): ${await stopProcess(p)}`);
    const made =
      s.cloud !== undefined &&
      (s.cloud.networks.length + s.cloud.ports.length + s.cloud.servers.length > 0 || s.cloud.router !== undefined);
    if (s.cloud !== undefined && made) {
      try {
        await deprovision(realClients(s.cloud, o.io.env), s.cloud, (m) => say(`cloud "${s.cloud!.name}": ${m}`));
      } catch (e) {
        cloudError = `Cannot remove what the lab made in cloud "${s.cloud.name}": ${(e as Error).message}`;
      }
    }
  }
  if (s === undefined) {
    // Without a record here, namespaces with the lab's prefix belong to a lab recorded elsewhere.
    const others = await strayNamespaces();
    if (others.length > 0) {
      o.io.err(
        `no lab is recorded in ${o.dir}, but namespaces ${others.join(", ")} exist: give "tcnp lab down" the --dir of the lab that made them (default ${DEFAULT_LAB_DIR})\n`,
      );
      return 1;
    }
    say("no lab was recorded; nothing left behind");
    return 0;
  }
  // One lab at a time owns the prefix ("up" refuses taken names), so strays are a half-built one's.
  const names = new Set([...s.namespaces, ...s.pods.map((p) => p.ns), ...(await strayNamespaces())]);
  for (const n of names) await o.kernel.deleteNetns(n);
  if (names.size > 0) say(`removed ${names.size} namespaces`);
  if (cloudError !== undefined) {
    // Keep the record: a later "down" tries the cloud again.
    o.io.err(`${cloudError}\nThe lab's record stays in ${o.dir}; run "tcnp lab down" again once the cloud answers.\n`);
    return 1;
  }
  fs.rmSync(o.dir, { recursive: true, force: true });
  const left = await strayNamespaces();
  if (left.length > 0) {
    o.io.err(`namespaces still present: ${left.join(", ")}\n`);
    return 1;
  }
  say("done: no namespace, link, process or file of the lab is left");
  return 0;
}

export async function labStatus(o: { dir: string; io: Io; kernel: Kernel; json?: boolean }): Promise<number> {
  const s: LabState | undefined = readLab(o.dir);
  if (s === undefined) {
    if (o.json === true) o.io.out(`${JSON.stringify({ up: false, dir: o.dir }, null, 2)}\n`);
    else o.io.out("no lab is up\n");
    return 1;
  }
  const missingNs = s.namespaces.filter((n) => !o.kernel.netnsExists(namedNetns(n)));
  const dead = s.processes.filter((p) => !isOurs(p));
  const agents = await agentReports(s);
  const up = s.status === "up" && missingNs.length === 0 && dead.length === 0;
  if (o.json === true) {
    o.io.out(
      `${JSON.stringify(
        {
          up,
          dir: s.dir,
          status: s.status,
          ...(s.error === undefined ? {} : { error: s.error }),
          startedAt: s.startedAt,
          cloud:
            s.cloud === undefined ? { kind: "embedded", authUrl: s.authUrl } : { kind: "real", name: s.cloud.name },
          vms: s.vms,
          pods: s.pods,
          processes: s.processes.map((p) => ({ name: p.name, pid: p.pid, running: isOurs(p) })),
          agents,
          missingNamespaces: missingNs,
        },
        null,
        2,
      )}\n`,
    );
    return up ? 0 : 1;
  }
  const out = (t: string): void => o.io.out(`${t}\n`);
  out(`lab in ${s.dir}: ${s.status}${s.error === undefined ? "" : ` (${s.error})`}, since ${s.startedAt}`);
  out(`cloud: ${s.cloud === undefined ? "embedded" : `"${s.cloud.name}" (real)`} at ${s.authUrl ?? "-"}`);
  if (s.cloud !== undefined)
    out(
      `  made there: networks ${s.cloud.networks.map((n) => n.id).join(", ") || "-"}; router ${s.cloud.router ?? "-"}; servers ${s.cloud.servers.join(", ") || "-"}`,
    );
  for (const v of s.vms) out(`  ${v.name}  ${v.ip}  namespace ${v.ns}`);
  for (const p of s.pods) out(`  pod default/${p.podName}  ${p.mode}  ${p.ip ?? "(no address)"}  on ${p.vm}`);
  for (const p of s.processes) out(`  process ${p.name}: pid ${p.pid} ${isOurs(p) ? "running" : "NOT RUNNING"}`);
  const dirFlag = o.dir === DEFAULT_LAB_DIR ? "" : ` --dir ${o.dir}`;
  for (const a of agents) {
    const vm = s.vms.find((v) => v.name === a.vm)!;
    if (!a.running || !a.answering) {
      out(
        `  ${a.vm} node agent: ${a.running ? "not answering" : "NOT RUNNING"} on ${a.socket}; its pods are served by the plugins meanwhile. Start it again: tcnp lab agent-restart ${a.vm}${dirFlag}`,
      );
      continue;
    }
    out(`  ${a.vm} node agent: socket ${a.socket}, metrics ${a.metrics}`);
    for (const p of a.pools)
      out(
        `  ${a.vm} ${p.mode} pool: ${p.free.length} free [${p.free.join(" ")}], ${p.inUse} in use, ${p.cooling} cooling, ${p.pendingReleases} pending; warm target ${p.targets.warm}${p.cloudError === undefined ? "" : `; cloud failing: ${p.cloudError}`}`,
      );
    const env = Object.entries(a.env)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    out(`    by hand: ip netns exec ${vm.ns} env ${env} tcnp agent status`);
    out(`             (or: tcnp doctor --pod default/<pod>; tcnp gc --dry-run --conf-dir ${vm.dir}/net.d-mix)`);
  }
  if (missingNs.length > 0) out(`  missing namespaces: ${missingNs.join(", ")}`);
  return up ? 0 : 1;
}
