// The node agent's figures, next to the plugin path and the reference plugins in the same run:
//  1. mix ADD/DEL latency, cold process per call as a runtime execs it (the installed tcnp-cni
//     forwarder → the agent), vs the plugin path (TCNP_AGENT=off) and ptp + host-local, one VM
//     namespace; breakdown: client (exec of the forwarder, its connect and exit), agent work, of
//     which kernel and cloud (from the agent's log line).
//  2. a burst of N pods ADDed at once on one VM with L ms added to every Neutron call, through the
//     agent (warm pool of W), and through the plugin path: first start → last return.
//   node build/bench/agent.js [runs=30] [burst=50] [latencyMs=75] [warm=10]   (root, dist/ built)
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { MIX_NET, World } from "../test/helpers/world.js";
import { ms, summary, table } from "./stats.js";

const RUNS = Number(process.argv[2] ?? 30);
const BURST = Number(process.argv[3] ?? 50);
const LATENCY = Number(process.argv[4] ?? 75);
const WARM = Number(process.argv[5] ?? 10);

const w = await World.start({ vms: 1, home: "mix" });
const vm = w.vms[0]!;
const agentLog = path.join(vm.dir, "agent.log");
const hostLocalDir = path.join(w.dir, "host-local");
const ptpConf = JSON.stringify({
  cniVersion: "1.0.0",
  name: "ptpnet",
  type: "ptp",
  ipam: { type: "host-local", subnet: "10.99.0.0/16", dataDir: hostLocalDir, routes: [{ dst: "0.0.0.0/0" }] },
});
// The default cool-down (the test helpers set 0); the runs' released addresses cool down for 30 s, so
// the maximum is above what the runs and the burst hold together.
const ourConf = JSON.stringify(
  w.mixConf({ cniVersion: "1.0.0" }, { pool: { warmTarget: WARM, maximum: 200 }, coolDownSeconds: 30 }),
);
fs.writeFileSync(path.join(vm.confDir, "10-mix.conf"), ourConf);

function exec(bin: string, env: Record<string, string>, stdin: string): Promise<{ ms: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn("nsenter", [`--net=${vm.ns}`, bin], { env: { ...w.env(vm), ...env } });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", (code) => {
      const t = ms(t0);
      if (code !== 0) reject(new Error(`${bin} ${env["CNI_COMMAND"]} failed: ${out}`));
      else resolve({ ms: t, out });
    });
    child.stdin.end(stdin);
  });
}

async function untilWarm(n: number): Promise<void> {
  for (let i = 0; i < 600 && ((await w.agentPools(vm))?.[0]?.free.length ?? 0) < n; i++)
    await new Promise((r) => setTimeout(r, 100));
}

interface Line {
  durationMs: number;
  cloudMs: number;
  cloudCalls: number;
  kernelMs: number;
  command?: string;
}
function agentLines(): Line[] {
  return fs
    .readFileSync(agentLog, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Line & { msg: string })
    .filter((l) => l.msg === "CNI command done");
}

const envFor = (cmd: string, pod: { id: string; path: string }, extra: Record<string, string> = {}) => ({
  CNI_COMMAND: cmd,
  CNI_CONTAINERID: pod.id,
  CNI_NETNS: pod.path,
  CNI_IFNAME: "eth0",
  ...extra,
});

const veth = path.join(w.binDir, "veth-route");
// A build made without Go: no tcnp-cni, the plugin names run the Node executable, which forwards.
const nogo = path.join(w.dir, "dist-nogo");
fs.mkdirSync(nogo);
fs.copyFileSync(path.join(w.binDir, "tcnp"), path.join(nogo, "tcnp"));
fs.chmodSync(path.join(nogo, "tcnp"), 0o755);
fs.symlinkSync("tcnp", path.join(nogo, "veth-route"));
const nodeVeth = path.join(nogo, "veth-route");
const s = {
  agentAdd: [] as number[],
  agentDel: [] as number[],
  nodeAdd: [] as number[],
  pluginAdd: [] as number[],
  ptpAdd: [] as number[],
  ptpDel: [] as number[],
};
const parts: Array<Line & { wall: number }> = [];
const measured = new Set<string>();
let profileLines: string[] = [];
const quiet: string[] = [];
let agent: ChildProcess | undefined;
const burst: Array<Array<string | number>> = [];
try {
  agent = w.startAgent(vm);
  await untilWarm(WARM);
  for (let i = -3; i < RUNS; i++) {
    const pod = await w.newPod("a");
    const a = await exec(veth, envFor("ADD", pod), ourConf);
    const la = agentLines().at(-1)!;
    const d = await exec(veth, envFor("DEL", pod), ourConf);
    const podN = await w.newPod("n");
    const na = await exec(nodeVeth, envFor("ADD", podN), ourConf);
    await exec(nodeVeth, envFor("DEL", podN), ourConf);
    await w.removePodNetns(podN.name);
    const pod2 = await w.newPod("r");
    const ra = await exec("/usr/lib/cni/ptp", envFor("ADD", pod2), ptpConf);
    const rd = await exec("/usr/lib/cni/ptp", envFor("DEL", pod2), ptpConf);
    for (const p of [pod, pod2]) await w.removePodNetns(p.name);
    if (i < 0) continue;
    s.agentAdd.push(a.ms);
    s.agentDel.push(d.ms);
    s.nodeAdd.push(na.ms);
    s.ptpAdd.push(ra.ms);
    s.ptpDel.push(rd.ms);
    parts.push({ ...la, wall: a.ms });
  }
  const stopAgent = async (): Promise<void> => {
    const gone = new Promise((r) => agent!.once("exit", r));
    agent!.kill("SIGTERM");
    await gone;
  };
  // The plugin path: no agent running (a running agent is the node's one writer; it would serve).
  await stopAgent();
  for (let i = -3; i < RUNS; i++) {
    const pod1 = await w.newPod("p");
    const pa = await exec(veth, envFor("ADD", pod1, { TCNP_AGENT: "off" }), ourConf);
    await exec(veth, envFor("DEL", pod1, { TCNP_AGENT: "off" }), ourConf);
    await w.removePodNetns(pod1.name);
    if (i >= 0) s.pluginAdd.push(pa.ms);
  }

  // The profile: an agent logging every kernel call (debug), apart from the runs above.
  fs.writeFileSync(agentLog, "");
  agent = w.startAgent(vm, ["--log-level", "debug"]);
  await untilWarm(WARM);
  for (let i = -3; i < RUNS; i++) {
    // The pods' namespaces go after the loop: a namespace being torn down holds the kernel's RTNL
    // lock while its links unregister, which every netlink request then waits for (2–5 ms here).
    const pod = await w.newPod("k");
    await exec(veth, envFor("ADD", pod), ourConf);
    await exec(veth, envFor("DEL", pod), ourConf);
    quiet.push(pod.name);
    if (i >= 0) measured.add(pod.id);
  }
  profileLines = fs.readFileSync(agentLog, "utf8").trim().split("\n");
  for (const n of quiet) await w.removePodNetns(n);
  await stopAgent();
  agent = w.startAgent(vm);

  // The burst, through the agent then through the plugin path, with every Neutron call slowed.
  w.em.addFault({ kind: "latency", service: "network", latencyMs: LATENCY });
  for (const via of ["agent", "plugin"] as const) {
    if (via === "agent") await untilWarm(WARM);
    else await stopAgent();
    const pods = await Promise.all(Array.from({ length: BURST }, () => w.newPod("b")));
    const extra: Record<string, string> = via === "plugin" ? { TCNP_AGENT: "off" } : {};
    const t0 = process.hrtime.bigint();
    const outs = await Promise.all(pods.map((p) => exec(veth, envFor("ADD", p, extra), ourConf)));
    const total = ms(t0);
    const ips = outs.map(
      (o) => (JSON.parse(o.out) as { ips: Array<{ address: string }> }).ips[0]!.address.split("/")[0]!,
    );
    const onPort = w.vmPort(vm, MIX_NET).ips;
    const distinct = new Set(ips).size === ips.length;
    const all = ips.every((ip) => onPort.includes(ip));
    const q = summary(outs.map((o) => o.ms));
    burst.push([
      via === "agent" ? `through the agent (warm ${WARM})` : "plugin path (no agent)",
      BURST,
      Math.round(total),
      q.median,
      q.max,
      distinct && all ? "yes" : "NO",
    ]);
    const t1 = process.hrtime.bigint();
    await Promise.all(pods.map((p) => exec(veth, envFor("DEL", p, extra), ourConf)));
    burst[burst.length - 1]!.push(Math.round(ms(t1)));
    for (const p of pods) await w.removePodNetns(p.name);
  }
  w.em.clearFaults();
} finally {
  if (agent?.exitCode === null) agent.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 300));
  await w.stop();
}

const row = (name: string, x: number[]): Array<string | number> => {
  const q = summary(x);
  return [name, q.n, q.min, q.median, q.p95, q.max];
};
process.stdout.write(`cold processes as a runtime execs them, ${RUNS} runs each (after 3 warm-up), one VM namespace\n`);
process.stdout.write(
  `${table(
    ["case", "n", "min ms", "median ms", "p95 ms", "max ms"],
    [
      row("tcnp ADD through the agent (tcnp-cni → agent)", s.agentAdd),
      row("tcnp ADD through the agent, no forwarder (tcnp → agent)", s.nodeAdd),
      row("tcnp ADD, plugin path (no agent)", s.pluginAdd),
      row("reference ptp + host-local ADD", s.ptpAdd),
      row("tcnp DEL through the agent", s.agentDel),
      row("reference ptp + host-local DEL", s.ptpDel),
    ],
  )}\n`,
);
const med = (f: (l: Line & { wall: number }) => number): number => summary(parts.map(f)).median;
process.stdout.write(
  `\nratio agent ADD / reference ADD (medians): ${(summary(s.agentAdd).median / summary(s.ptpAdd).median).toFixed(2)}\n`,
);
process.stdout.write(
  `\nbreakdown of an ADD through the agent (medians, ms)\n${table(
    ["wall", "client (forwarder exec, connect, exit)", "agent work", "kernel", "cloud", "cloud calls"],
    [
      [
        med((l) => l.wall),
        med((l) => l.wall - l.durationMs),
        med((l) => l.durationMs),
        med((l) => l.kernelMs),
        med((l) => l.cloudMs),
        med((l) => l.cloudCalls),
      ],
    ],
  )}\n`,
);
// The profile of the agent's kernel work for one mix ADD: every kernel call it logged (debug) for the
// measured ADDs, by operation.
const calls = new Map<string, number[]>();
for (const l of profileLines) {
  const x = JSON.parse(l) as { msg: string; op?: string; ms?: number; containerId?: string; command?: string };
  if (x.msg !== "kernel call" || x.command !== "ADD" || !measured.has(x.containerId ?? "")) continue;
  calls.set(x.op!, [...(calls.get(x.op!) ?? []), x.ms!]);
}
const perAdd = (xs: number[]): string => (xs.reduce((a, b) => a + b, 0) / measured.size).toFixed(2);
const quietKernel = profileLines
  .map((l) => JSON.parse(l) as Line & { msg: string; containerId?: string })
  .filter((l) => l.msg === "CNI command done" && l.command === "ADD" && measured.has(l.containerId ?? ""))
  .map((l) => l.kernelMs);
process.stdout.write(
  `\nthe agent's kernel work for one mix ADD with no namespace being torn down: median ${summary(quietKernel).median} ms, p95 ${summary(quietKernel).p95} ms (${measured.size} ADDs, debug log on)\n`,
);
process.stdout.write(
  `\nthe agent's kernel calls in one mix ADD, by operation (${measured.size} ADDs)\n${table(
    ["operation", "calls per ADD", "ms per ADD", "median ms per call"],
    [...calls.entries()]
      .sort((a, b) => b[1].reduce((x, y) => x + y, 0) - a[1].reduce((x, y) => x + y, 0))
      .map(([op, xs]) => [op, (xs.length / measured.size).toFixed(1), perAdd(xs), summary(xs).median]),
  )}\n`,
);
process.stdout.write(
  `\nburst: ${BURST} ADDs at once on one VM, +${LATENCY} ms on every Neutron call\n${table(
    [
      "path",
      "pods",
      "first start → last ADD returns, ms",
      "median ADD ms",
      "max ADD ms",
      "distinct, on the port",
      "DEL burst ms",
    ],
    burst,
  )}\n`,
);
