// mix-mode ADD and DEL latency, cold process per call as a runtime execs plugins, next to the
// reference ptp + host-local in the same run and the same VM namespace. Our calls talk to the
// emulator over HTTP through the topology's router. Breakdown of our calls from the plugin's own
// log line: process start (Node bootstrap + module load), cloud (HTTP), kernel (netlink, sysctl,
// iptables), other in-process work (config, locks, state files), and exec/exit overhead.
//   sudo node build/bench/mix-latency.js [runs]      (needs root, dist/tcnp and the reference plugins)
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { World } from "../test/helpers/world.js";
import { ms, summary, table } from "./stats.js";

const RUNS = Number(process.argv[2] ?? 30);
const w = await World.start({ vms: 1, home: "mix" });
const vm = w.vms[0]!;
const log = path.join(vm.dir, "tcnp.log");
const hostLocalDir = path.join(w.dir, "host-local");
const ptpConf = JSON.stringify({
  cniVersion: "1.0.0",
  name: "ptpnet",
  type: "ptp",
  ipam: { type: "host-local", subnet: "10.99.0.0/16", dataDir: hostLocalDir, routes: [{ dst: "0.0.0.0/0" }] },
});
const ourConf = JSON.stringify(w.mixConf({ cniVersion: "1.0.0" }));

// Asynchronous: the emulator answering our plugin lives in this process's event loop.
function exec(bin: string, env: Record<string, string>, stdin: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn("nsenter", [`--net=${vm.ns}`, bin], {
      env: {
        PATH: process.env["PATH"] ?? "",
        CNI_PATH: `${w.binDir}:/usr/lib/cni`,
        TCNP_STATE_DIR: vm.stateDir,
        TCNP_LOG_FILE: log,
        ...env,
      },
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", (code) => {
      const t = ms(t0);
      if (code !== 0) reject(new Error(`${bin} ${env["CNI_COMMAND"]} failed: ${out}`));
      else resolve(t);
    });
    child.stdin.end(stdin);
  });
}

interface Line {
  durationMs: number;
  uptimeMs: number;
  cloudMs: number;
  kernelMs: number;
  cloudCalls: number;
}
function lastLine(): Line {
  const lines = fs.readFileSync(log, "utf8").trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!) as Line;
}

const s = { ourAdd: [] as number[], ourDel: [] as number[], ptpAdd: [] as number[], ptpDel: [] as number[] };
const parts = { add: [] as Array<Line & { wall: number }>, del: [] as Array<Line & { wall: number }> };
try {
  // The server work is done in this process (the emulator); let it run while we wait on children.
  for (let i = -3; i < RUNS; i++) {
    const pod = await w.newPod("b");
    const env = (cmd: string): Record<string, string> => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: pod.id,
      CNI_NETNS: pod.path,
      CNI_IFNAME: "eth0",
    });
    const a = await exec(path.join(w.binDir, "veth-route"), env("ADD"), ourConf);
    const la = lastLine();
    const d = await exec(path.join(w.binDir, "veth-route"), env("DEL"), ourConf);
    const ld = lastLine();
    const pod2 = await w.newPod("r");
    const env2 = (cmd: string): Record<string, string> => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: pod2.id,
      CNI_NETNS: pod2.path,
      CNI_IFNAME: "eth0",
    });
    const pa = await exec("/usr/lib/cni/ptp", env2("ADD"), ptpConf);
    const pd = await exec("/usr/lib/cni/ptp", env2("DEL"), ptpConf);
    await w.removePodNetns(pod.name);
    await w.removePodNetns(pod2.name);
    if (i < 0) continue;
    s.ourAdd.push(a);
    s.ourDel.push(d);
    s.ptpAdd.push(pa);
    s.ptpDel.push(pd);
    parts.add.push({ ...la, wall: a });
    parts.del.push({ ...ld, wall: d });
  }
} finally {
  await w.stop();
}

const row = (name: string, x: number[]): Array<string | number> => {
  const q = summary(x);
  return [name, q.n, q.min, q.median, q.p95, q.max];
};
process.stdout.write(`cold plugin processes, ${RUNS} runs each (after 3 warm-up), one VM namespace, nsenter --net\n`);
process.stdout.write(
  `${table(
    ["case", "n", "min ms", "median ms", "p95 ms", "max ms"],
    [
      row("tcnp veth-route + tcnp-ipam ADD", s.ourAdd),
      row("reference ptp + host-local ADD", s.ptpAdd),
      row("tcnp veth-route + tcnp-ipam DEL", s.ourDel),
      row("reference ptp + host-local DEL", s.ptpDel),
    ],
  )}\n`,
);
const med = (f: (l: Line & { wall: number }) => number, xs: Array<Line & { wall: number }>): number =>
  summary(xs.map(f)).median;
const breakdown = (xs: Array<Line & { wall: number }>): Array<string | number> => [
  med((l) => l.wall, xs),
  med((l) => l.uptimeMs - l.durationMs, xs),
  med((l) => l.cloudMs, xs),
  med((l) => l.cloudCalls, xs),
  med((l) => l.kernelMs, xs),
  med((l) => l.durationMs - l.cloudMs - l.kernelMs, xs),
  med((l) => l.wall - l.uptimeMs, xs),
];
process.stdout.write(
  `\nbreakdown of tcnp (medians, ms)\n${table(
    ["call", "wall", "process start", "cloud", "cloud calls", "kernel", "other in-process", "exec/exit"],
    [
      ["ADD", ...breakdown(parts.add)],
      ["DEL", ...breakdown(parts.del)],
    ],
  )}\n`,
);
