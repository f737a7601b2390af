// Pod start through the kubelet, side by side (issue 23): on the two-node lab cluster, N pods at once
// on vm1 with tcnp (mix mode, the agent's warm pool) and, in the same run, N pods at once on vm2
// whose runtime uses the reference ptp + host-local configuration (00-ptp.conflist sorts first in its
// conf dir). "created → Ready" per pod as a watch in the control plane's namespace sees it (first
// sighting → Ready=True), no image pull (the images are imported), NetworkPolicy on as shipped.
// The two nodes' bursts take turns (not at once: the whole cluster shares the machine's cores).
//   node build/bench/kubelet-podstart.js [pods=30] [rounds=2]       (root; the k8s builds cached)
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startLabCluster } from "../test/helpers/lab-cluster.js";
import { REFERENCE_CNI_DIR } from "../test/helpers/cni.js";
import { K8S_DIR } from "../test/helpers/kube-real.js";
import { summary, table } from "./stats.js";

const N = Number(process.argv[2] ?? 30);
const ROUNDS = Number(process.argv[3] ?? 2);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-podstart-"));
const c = await startLabCluster({ mode: "mix", dir, say: (l) => console.error(l) });
const rows: Array<Array<string | number>> = [];
try {
  const vm2 = c.nodes[1]!;
  const sh = (argv: string[], input?: string): void => {
    const a = vm2.exec(argv);
    const r = spawn(a[0]!, a.slice(1), { stdio: [input === undefined ? "ignore" : "pipe", "ignore", "inherit"] });
    r.stdin?.end(input);
  };
  for (const p of ["ptp", "host-local"]) sh(["cp", path.join(REFERENCE_CNI_DIR, p), `/opt/cni/bin/${p}`]);
  const ptp = {
    cniVersion: "0.4.0",
    name: "ptp-reference",
    plugins: [{ type: "ptp", ipam: { type: "host-local", subnet: "10.222.0.0/24", routes: [{ dst: "0.0.0.0/0" }] } }],
  };
  sh(["sh", "-c", "cat > /etc/cni/net.d/00-ptp.conflist"], JSON.stringify(ptp));
  await new Promise((r) => setTimeout(r, 3000)); // containerd reloads its conf dir
  c.cp.kubectl(["create", "namespace", "podstart"]);

  const samples: Record<string, number[]> = { "tcnp (mix, agent)": [], "ptp + host-local": [] };
  // One node's burst at a time (they share 2 cores), in turns: tcnp first in even rounds.
  for (let step = 0; step < ROUNDS * 2; step++) {
    const round = Math.floor(step / 2);
    const node = (step + round) % 2 === 0 ? "vm1" : "vm2";
    const seen = new Map<string, number>();
    const ready = new Map<string, number>();
    const w = c.cp.exec([
      path.join(K8S_DIR, "debs", "root", "usr", "bin", "kubectl"),
      `--kubeconfig=${c.cp.adminKubeconfig}`,
      "-n",
      "podstart",
      "get",
      "pods",
      "-w",
      "-o",
      `jsonpath={.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\\n"}`,
    ]);
    const watch = spawn(w[0]!, w.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
    let buf = "";
    watch.stdout!.on("data", (d: Buffer) => {
      const now = performance.now();
      buf += d.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const [name, st] = buf.slice(0, i).trim().split(" ");
        buf = buf.slice(i + 1);
        if (name === undefined || name === "") continue;
        if (!seen.has(name)) seen.set(name, now);
        if (st === "True" && !ready.has(name)) ready.set(name, now);
      }
    });
    await new Promise((r) => setTimeout(r, 1500));
    const pods = [node].flatMap((node) =>
      [...Array(N).keys()].map((i) => ({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: `r${round}-${node}-${i}` },
        spec: {
          nodeName: node,
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 0,
          containers: [{ name: "c", image: "k8s.gcr.io/pause:3.2", imagePullPolicy: "Never" }],
        },
      })),
    );
    c.cp.kubectl(
      ["apply", "-n", "podstart", "-f", "-"],
      JSON.stringify({ apiVersion: "v1", kind: "List", items: pods }),
    );
    const deadline = Date.now() + 180_000;
    while (ready.size < pods.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    watch.kill();
    for (const p of pods) {
      const s = seen.get(p.metadata.name);
      const r = ready.get(p.metadata.name);
      if (s === undefined || r === undefined) continue;
      samples[p.spec.nodeName === "vm1" ? "tcnp (mix, agent)" : "ptp + host-local"]!.push(r - s);
    }
    c.cp.kubectl(["delete", "pods", "--all", "-n", "podstart", "--wait=true", "--timeout=180s"]);
  }
  const ref = summary(samples["ptp + host-local"]!);
  for (const [name, s] of Object.entries(samples)) {
    const x = summary(s);
    const sorted = [...s].sort((a, b) => a - b);
    const p99 = sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] ?? NaN;
    rows.push([name, x.n, x.median, x.p95, p99, x.median / ref.median]);
  }
} finally {
  await c.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(
  `\n${N} pods at once on one node, ${ROUNDS} rounds per configuration: pod created → Ready as a watch sees it (ms)`,
);
console.log(table(["configuration", "pods", "p50", "p95", "p99", "p50 ÷ ref"], rows));
