// eni-mode ADD and DEL latency, cold process per call, next to the reference host-device plugin in
// the same run and VM namespace. Ours: host-device with tcnp-ipam (create a port, Nova attach, wait
// for the NIC, move it) then veth-host with that result; the reference moves an existing link.
// Breakdown of our calls from each plugin's own log line.
// The pods' DEL runs with the cool-down given (default 30 s, the configuration's default): the port is
// detached and kept; with 0 it is detached and deleted at DEL.
//   sudo node build/bench/eni-latency.js [runs] [coolDownSeconds]
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { World } from "../test/helpers/world.js";
import { ms, summary, table } from "./stats.js";

const RUNS = Number(process.argv[2] ?? 30);
const COOL = Number(process.argv[3] ?? 30);
const w = await World.start({ vms: 1, home: "eni" });
const vm = w.vms[0]!;
const log = path.join(vm.dir, "tcnp.log");
const list = w.eniConf({ cniVersion: "1.0.0" });
const first = (list["plugins"] as Array<Record<string, unknown>>)[0]!;
first["ipam"] = { ...(first["ipam"] as object), coolDownSeconds: COOL };
const [hdConf, vhConf] = (list["plugins"] as Array<Record<string, unknown>>).map((p) => ({
  ...p,
  name: "cni0",
  cniVersion: "1.0.0",
}));

function exec(bin: string, env: Record<string, string>, stdin: string): Promise<{ ms: number; out: string }> {
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
    child.on("close", (code) =>
      code === 0 ? resolve({ ms: ms(t0), out }) : reject(new Error(`${bin} ${env["CNI_COMMAND"]} failed: ${out}`)),
    );
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
const lastLine = (): Line => {
  const lines = fs.readFileSync(log, "utf8").trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!) as Line;
};

const t = {
  hdAdd: [] as number[],
  vhAdd: [] as number[],
  chainAdd: [] as number[],
  vhDel: [] as number[],
  hdDel: [] as number[],
  chainDel: [] as number[],
  refAdd: [] as number[],
  refDel: [] as number[],
};
const parts = {
  hdAdd: [] as Array<Line & { wall: number }>,
  hdDel: [] as Array<Line & { wall: number }>,
  vhAdd: [] as Array<Line & { wall: number }>,
  vhDel: [] as Array<Line & { wall: number }>,
};
try {
  for (let i = -3; i < RUNS; i++) {
    const pod = await w.newPod("b");
    const env = (cmd: string): Record<string, string> => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: pod.id,
      CNI_NETNS: pod.path,
      CNI_IFNAME: "eth0",
    });
    const a1 = await exec(path.join(w.binDir, "host-device"), env("ADD"), JSON.stringify(hdConf));
    const l1 = lastLine();
    const a2 = await exec(
      path.join(w.binDir, "veth-host"),
      env("ADD"),
      JSON.stringify({ ...vhConf, prevResult: JSON.parse(a1.out) }),
    );
    const l2 = lastLine();
    const d2 = await exec(
      path.join(w.binDir, "veth-host"),
      env("DEL"),
      JSON.stringify({ ...vhConf, prevResult: JSON.parse(a2.out) }),
    );
    const l3 = lastLine();
    const d1 = await exec(
      path.join(w.binDir, "host-device"),
      env("DEL"),
      JSON.stringify({ ...hdConf, prevResult: JSON.parse(a2.out) }),
    );
    const l4 = lastLine();
    await w.em.settle();
    // The reference: move an existing link (a spare veth end in the VM) into a fresh pod and back.
    const ref = await w.newPod("r");
    await w.kernel.createVeth(vm.ns, { name: "refdev", peer: { name: "refpeer", netns: w.topo.ns.net } });
    const renv = (cmd: string): Record<string, string> => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: ref.id,
      CNI_NETNS: ref.path,
      CNI_IFNAME: "eth0",
    });
    const refConf = JSON.stringify({ cniVersion: "1.0.0", name: "ref", type: "host-device", device: "refdev" });
    const ra = await exec("/usr/lib/cni/host-device", renv("ADD"), refConf);
    const rd = await exec("/usr/lib/cni/host-device", renv("DEL"), refConf);
    await w.kernel.deleteLink(vm.ns, "refdev");
    await w.removePodNetns(pod.name);
    await w.removePodNetns(ref.name);
    if (i < 0) continue;
    t.hdAdd.push(a1.ms);
    t.vhAdd.push(a2.ms);
    t.chainAdd.push(a1.ms + a2.ms);
    t.vhDel.push(d2.ms);
    t.hdDel.push(d1.ms);
    t.chainDel.push(d1.ms + d2.ms);
    t.refAdd.push(ra.ms);
    t.refDel.push(rd.ms);
    parts.hdAdd.push({ ...l1, wall: a1.ms });
    parts.vhAdd.push({ ...l2, wall: a2.ms });
    parts.vhDel.push({ ...l3, wall: d2.ms });
    parts.hdDel.push({ ...l4, wall: d1.ms });
  }
} finally {
  await w.stop();
}

const row = (name: string, x: number[]): Array<string | number> => {
  const q = summary(x);
  return [name, q.n, q.min, q.median, q.p95, q.max];
};
process.stdout.write(
  `cold plugin processes, ${RUNS} runs each (after 3 warm-up); the emulator answers Nova attach at once and plugs the NIC; ipam.coolDownSeconds ${COOL}\n`,
);
process.stdout.write(
  `${table(
    ["case", "n", "min ms", "median ms", "p95 ms", "max ms"],
    [
      row("tcnp host-device + tcnp-ipam ADD", t.hdAdd),
      row("tcnp veth-host ADD", t.vhAdd),
      row("tcnp eni chain ADD (sum)", t.chainAdd),
      row("reference host-device ADD (existing link)", t.refAdd),
      row("tcnp veth-host DEL", t.vhDel),
      row("tcnp host-device + tcnp-ipam DEL", t.hdDel),
      row("tcnp eni chain DEL (sum)", t.chainDel),
      row("reference host-device DEL", t.refDel),
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
  `\nbreakdown (medians, ms); "other in-process" includes waiting for the NIC and for Nova's detach\n${table(
    ["call", "wall", "process start", "cloud", "cloud calls", "kernel", "other in-process", "exec/exit"],
    [
      ["host-device ADD", ...breakdown(parts.hdAdd)],
      ["veth-host ADD", ...breakdown(parts.vhAdd)],
      ["veth-host DEL", ...breakdown(parts.vhDel)],
      ["host-device DEL", ...breakdown(parts.hdDel)],
    ],
  )}\n`,
);
