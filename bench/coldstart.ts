// Cold start of the built executable next to the reference Go `ptp` plugin, in one run:
//   VERSION, and an ADD that each plugin answers without kernel or cloud work (its configuration
//   names an IPAM plugin that does not exist / lacks a type, so both parse stdin and answer an error).
//   node build/bench/coldstart.js [runs]
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ms, summary, table } from "./stats.js";

const RUNS = Number(process.argv[2] ?? 50);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-bench-"));
const bin = path.join(dir, "bin");
spawnSync(path.join(root, "dist/tcnp"), ["install", "--bin-dir", bin]);
const PTP = "/usr/lib/cni/ptp";

interface Case {
  name: string;
  argv: string;
  env: Record<string, string>;
  stdin: string;
}
const addEnv = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "bench",
  CNI_NETNS: "/var/run/netns/none",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/nonexistent",
};
const cases: Case[] = [
  {
    name: "tcnp veth-route VERSION",
    argv: path.join(bin, "veth-route"),
    env: { CNI_COMMAND: "VERSION" },
    stdin: '{"cniVersion":"1.0.0"}',
  },
  { name: "Go ptp VERSION", argv: PTP, env: { CNI_COMMAND: "VERSION" }, stdin: '{"cniVersion":"1.0.0"}' },
  {
    name: "tcnp veth-route ADD (answered before any work)",
    argv: path.join(bin, "veth-route"),
    env: { ...addEnv, TCNP_LOG_FILE: path.join(dir, "log") },
    stdin: JSON.stringify({ cniVersion: "1.0.0", name: "b", type: "veth-route", ipam: {} }),
  },
  {
    name: "Go ptp ADD (answered before any work)",
    argv: PTP,
    env: addEnv,
    stdin: JSON.stringify({ cniVersion: "1.0.0", name: "b", type: "ptp", ipam: { type: "none" } }),
  },
];
const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
for (let i = -3; i < RUNS; i++) {
  for (const c of cases) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(c.argv, [], { env: c.env, input: c.stdin });
    const t = ms(t0);
    if (i === -3 && c.name.includes("VERSION") && r.status !== 0) throw new Error(`${c.name} failed: ${r.stdout}`);
    if (i >= 0) samples.get(c.name)!.push(t);
  }
}
const rows = cases.map((c) => {
  const s = summary(samples.get(c.name)!);
  return [c.name, s.n, s.min, s.median, s.p95, s.max];
});
const med = (n: string): number => summary(samples.get(n)!).median;
process.stdout.write(`${table(["case", "n", "min ms", "median ms", "p95 ms", "max ms"], rows)}\n`);
process.stdout.write(
  `ratio tcnp/ptp (median): VERSION ${(med(cases[0]!.name) / med(cases[1]!.name)).toFixed(1)}×, ADD ${(med(cases[2]!.name) / med(cases[3]!.name)).toFixed(1)}×\n`,
);
process.stdout.write(
  `executable: ${(fs.statSync(path.join(root, "dist/tcnp")).size / 1e6).toFixed(1)} MB (Node ${process.version} single executable, code cache)\n`,
);
fs.rmSync(dir, { recursive: true, force: true });
