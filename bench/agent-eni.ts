// eni ADD/DEL through the node agent from a warm pool of pre-attached ports (cold forwarder process
// per call, as a runtime execs it), next to the reference host-device moving an existing link, same
// run, same VM namespace. Cool-down 0 here so each run's port comes back to the pool at once.
//   node build/bench/agent-eni.js [runs=20]   (root, dist/ built)
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { World } from "../test/helpers/world.js";
import { ms, summary, table } from "./stats.js";

const RUNS = Number(process.argv[2] ?? 20);
const w = await World.start({ vms: 1, home: "eni" });
const vm = w.vms[0]!;
const list = w.eniConf({ cniVersion: "1.0.0" });
const plugins = list["plugins"] as Array<Record<string, unknown>>;
plugins[0]!["ipam"] = { ...(plugins[0]!["ipam"] as object), coolDownSeconds: 0, pool: { warmTarget: 3 } };
w.install(vm, "10-cnichain.conflist", list);
const hdConf = { ...plugins[0], name: "cni0", cniVersion: "1.0.0" };

function exec(bin: string, env: Record<string, string>, stdin: string): Promise<{ ms: number; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn("nsenter", [`--net=${vm.ns}`, bin], { env: { ...w.env(vm), ...env } });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", (code) =>
      code === 0 ? resolve({ ms: ms(t0), out }) : reject(new Error(`${bin} ${env["CNI_COMMAND"]} failed: ${out}`)),
    );
    child.stdin.end(stdin);
  });
}

const t = { add: [] as number[], del: [] as number[], refAdd: [] as number[], refDel: [] as number[] };
let agent: ChildProcess | undefined;
try {
  agent = w.startAgent(vm);
  for (let i = -3; i < RUNS; i++) {
    for (let j = 0; j < 300 && ((await w.agentPools(vm))?.[0]?.free.length ?? 0) < 3; j++)
      await new Promise((r) => setTimeout(r, 50));
    const pod = await w.newPod("b");
    const env = (cmd: string): Record<string, string> => ({
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: pod.id,
      CNI_NETNS: pod.path,
      CNI_IFNAME: "eth0",
    });
    const a = await exec(path.join(w.binDir, "host-device"), env("ADD"), JSON.stringify(hdConf));
    const d = await exec(
      path.join(w.binDir, "host-device"),
      env("DEL"),
      JSON.stringify({ ...hdConf, prevResult: JSON.parse(a.out) }),
    );
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
    t.add.push(a.ms);
    t.del.push(d.ms);
    t.refAdd.push(ra.ms);
    t.refDel.push(rd.ms);
  }
} finally {
  agent?.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 300));
  await w.stop();
}
const row = (name: string, x: number[]): Array<string | number> => {
  const q = summary(x);
  return [name, q.n, q.min, q.median, q.p95, q.max];
};
process.stdout.write(
  `eni, cold processes as a runtime execs them, ${RUNS} runs each (after 3 warm-up), one VM namespace\n${table(
    ["case", "n", "min ms", "median ms", "p95 ms", "max ms"],
    [
      row("tcnp host-device + tcnp-ipam ADD through the agent (warm NIC)", t.add),
      row("reference host-device ADD (an existing link)", t.refAdd),
      row("tcnp host-device DEL through the agent", t.del),
      row("reference host-device DEL", t.refDel),
    ],
  )}\nratio ADD agent / reference (medians): ${(summary(t.add).median / summary(t.refAdd).median).toFixed(2)}\n`,
);
