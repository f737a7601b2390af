// NetworkPolicy figures (issue 24), each beside its no-policy figure in the same run:
//  1. the ADD step the agent adds for a pod (compute its rules, write them with nft), with 0 and 100
//     policies in the cluster: what a pod's ADD pays for policy (root: a scratch namespace);
//  2. a label change → the rules in the kernel, through a real kube-apiserver (its watch) and the
//     engine: p50/p99 (root and the control plane built);
//  3. recomputing every pod of a 1,000-pod cluster under 200 policies: CPU time and memory.
//   node build/bench/policy.js [runs=50] [labelRuns=30]
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PolicyEngine } from "../src/agent/policy.js";
import { Kube } from "../src/controller/kube.js";
import { Metrics } from "../src/controller/metrics.js";
import { nftApply, nftListTable } from "../src/kernel/nft.js";
import { HOST } from "../src/kernel/types.js";
import { nullLogger } from "../src/log/logger.js";
import { nodeFetch } from "../src/openstack/node-fetch.js";
import { podPolicy, type World } from "../src/policy/compute.js";
import { parsePolicy, type Pod, type Policy } from "../src/policy/model.js";
import { chainRules, hostBase, hostPodScript } from "../src/policy/nft.js";
import { SharedSets } from "../src/policy/sets.js";
import { controlPlaneSkipReason, startControlPlane } from "../test/helpers/kube-real.js";
import { ms, summary, table } from "./stats.js";

const RUNS = Number(process.argv[2] ?? 50);
const LABEL_RUNS = Number(process.argv[3] ?? 30);
const NS = 20;

function cluster(pods: number, policies: number): World {
  const ps: Pod[] = [];
  for (let i = 0; i < pods; i++)
    ps.push({
      namespace: `ns${i % NS}`,
      name: `p${i}`,
      uid: `u${i}`,
      labels: { app: `app${i % 50}`, tier: ["web", "db", "cache"][i % 3]! },
      ips: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`],
      hostNetwork: false,
      finished: false,
      ports: [{ name: "http", containerPort: 8080, protocol: "TCP" }],
    });
  const pol: Policy[] = [];
  for (let j = 0; j < policies; j++)
    pol.push(
      parsePolicy({
        metadata: { namespace: `ns${j % NS}`, name: `np${j}` },
        spec: {
          podSelector: j % 4 === 0 ? {} : { matchLabels: { app: `app${j % 50}` } },
          policyTypes: j % 2 === 0 ? ["Ingress"] : ["Ingress", "Egress"],
          ingress: [
            {
              from: [
                { podSelector: { matchExpressions: [{ key: "tier", operator: "In", values: ["web"] }] } },
                {
                  namespaceSelector: { matchLabels: { team: `t${j % 5}` } },
                  podSelector: { matchLabels: { app: `app${(j + 1) % 50}` } },
                },
                { ipBlock: { cidr: "192.168.0.0/16", except: ["192.168.1.0/24"] } },
              ],
              ports: [{ port: "http" }, { port: 9000, endPort: 9100 }],
            },
          ],
          ...(j % 2 === 1 ? { egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: "http" }] }] } : {}),
        },
      }),
    );
  const namespaces = new Map(
    [...Array(NS).keys()].map((k) => [`ns${k}`, { name: `ns${k}`, labels: { team: `t${k % 5}` } }]),
  );
  return { policies: pol, pods: ps, namespaces };
}

const rows: Array<Array<string | number>> = [];

// 3. Recompute everything.
for (const policies of [0, 200]) {
  const before = process.memoryUsage().heapUsed;
  const w = cluster(1000, policies);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let rules = 0;
  for (const p of w.pods) {
    const pp = podPolicy(p, w);
    rules += chainRules(pp.ingress, "ingress").length + chainRules(pp.egress, "egress").length;
  }
  const wall = ms(t0);
  const cpu = process.cpuUsage(cpu0);
  const heap = (process.memoryUsage().heapUsed - before) / 2 ** 20;
  rows.push([`recompute 1,000 pods, ${policies} policies`, (cpu.user + cpu.system) / 1000, wall, heap, rules]);
}
console.log(table(["pure recompute (no kernel)", "CPU ms", "wall ms", "heap MiB", "rules"], rows));

if (process.getuid?.() !== 0) {
  console.log("\n(the ADD and label-change figures need root: skipped)");
  process.exit(0);
}

// 1. The ADD step, 0 vs 100 policies: as the agent does it (shared peer sets, src/policy/sets.ts),
// with the cluster unchanged since the previous ADD (the agent's world and its selections cached)
// and with it changed (everything computed afresh). Each configuration on its own scratch namespace
// (a node's) that already runs 20 pods, one per namespace (nft's cost grows with the table); the
// two configurations' ADDs take turns, so the machine's drift during the run falls on both alike.
const addRows: Array<Array<string | number>> = [];
const p50 = new Map<string, number>();
for (const fresh of [false, true]) {
  const configs = [0, 100].map((policies) => ({
    policies,
    ns: `tcnp-bench-policy-${process.pid}-${policies}`,
    w: cluster(1000, policies),
    sets: new SharedSets(),
    samples: [] as number[],
  }));
  try {
    for (const c of configs) {
      execFileSync("ip", ["netns", "add", c.ns]);
      await nftApply(hostBase(), `/var/run/netns/${c.ns}`);
    }
    for (let i = 0; i < RUNS + NS; i++)
      for (const c of i % 2 === 0 ? configs : [...configs].reverse()) {
        const pod = { ...c.w.pods[i]!, name: `new${i}` };
        const t0 = process.hrtime.bigint();
        const p = podPolicy(pod, fresh ? { ...c.w } : c.w);
        const { named, wanted } = c.sets.namer();
        const v = `vethb${i}`;
        const script = hostPodScript(v, {
          ingress: chainRules(p.ingress, "ingress", named),
          egress: chainRules(p.egress, "egress", named),
        });
        const plan = c.sets.plan(v, wanted);
        await nftApply(plan.before + script, `/var/run/netns/${c.ns}`);
        plan.commit();
        if (i >= NS) c.samples.push(ms(t0));
      }
  } finally {
    for (const c of configs) execFileSync("ip", ["netns", "delete", c.ns], { stdio: "ignore" });
  }
  for (const c of configs) {
    const s = summary(c.samples);
    const label = `${c.policies} policies, ${fresh ? "cluster changed since the last ADD" : "cluster unchanged"}`;
    p50.set(label, s.median);
    addRows.push([label, s.median, s.p95, s.max]);
  }
}
console.log(
  `\nthe policy step of a pod's ADD (compute + nft transaction), ${RUNS} pods each, 1,000 pods in 20 namespaces:`,
);
console.log(table(["cluster", "p50 ms", "p95 ms", "max ms"], addRows));
for (const fresh of ["cluster unchanged", "cluster changed since the last ADD"]) {
  const d = p50.get(`100 policies, ${fresh}`)! - p50.get(`0 policies, ${fresh}`)!;
  console.log(`${fresh}: 100 policies add ${d.toFixed(2)} ms at p50 over no policy (the nft transaction is in both)`);
}

// 2. Label change → enforced, through a real API server.
const skip = controlPlaneSkipReason();
if (skip !== undefined) {
  console.log(`\n(label change → enforced: skipped: ${skip})`);
  process.exit(0);
}
const cp = await startControlPlane();
const ns2 = `tcnp-bench-policy2-${process.pid}`;
execFileSync("ip", ["netns", "add", ns2]);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-bench-policy-"));
let engine: PolicyEngine | undefined;
try {
  cp.kubectl(["create", "namespace", "bench"]);
  cp.kubectl(["create", "serviceaccount", "default", "-n", "bench"]);
  const mk = (name: string, app: string, ip: string): Promise<unknown> =>
    cp
      .api("POST", "/api/v1/namespaces/bench/pods", {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, labels: { app } },
        spec: { nodeName: "n", automountServiceAccountToken: false, containers: [{ name: "c", image: "pause" }] },
      })
      .then(() =>
        cp.api(
          "PATCH",
          `/api/v1/namespaces/bench/pods/${name}/status`,
          { status: { podIP: ip, podIPs: [{ ip }] } },
          "application/merge-patch+json",
        ),
      );
  await mk("server", "server", "10.88.0.1");
  await mk("client", "other", "10.88.0.2");
  for (let j = 0; j < 100; j++)
    cp.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { namespace: "bench", name: `np${j}` },
        spec: {
          podSelector: { matchLabels: { app: j === 0 ? "server" : `x${j}` } },
          ingress: [{ from: [{ podSelector: { matchLabels: { app: "client" } } }] }],
        },
      }),
    );
  cp.kubectl(["create", "serviceaccount", "agent", "-n", "bench"]);
  cp.kubectl([
    "create",
    "clusterrole",
    "bench-agent",
    "--verb=get,list,watch",
    "--resource=pods,namespaces,networkpolicies.networking.k8s.io",
  ]);
  cp.kubectl([
    "create",
    "clusterrolebinding",
    "bench-agent",
    "--clusterrole=bench-agent",
    "--serviceaccount=bench:agent",
  ]);
  const access = { apiUrl: cp.url, tokenFile: await cp.serviceAccountToken("bench", "agent"), caCert: cp.caFile };
  const nsPath2 = `/var/run/netns/${ns2}`;
  engine = new PolicyEngine({
    access,
    kube: new Kube(nodeFetch({ caCert: cp.caFile }), access),
    log: nullLogger,
    metrics: new Metrics(),
    dir,
    nft: (s, n) => nftApply(s, n === HOST ? nsPath2 : n),
  });
  await engine.start();
  await engine.attach({
    containerId: "bench-server",
    namespace: "bench",
    name: "server",
    ips: ["10.88.0.1"],
    hostVeth: "vethbench",
  });
  const hasClient = async (): Promise<boolean> =>
    JSON.stringify(await nftListTable("inet", "tcnp_policy", nsPath2)).includes("10.88.0.2");
  const samples: number[] = [];
  for (let i = 0; i < LABEL_RUNS; i++) {
    const want = i % 2 === 0;
    const t0 = process.hrtime.bigint();
    await cp.api(
      "PATCH",
      "/api/v1/namespaces/bench/pods/client",
      { metadata: { labels: { app: want ? "client" : "other" } } },
      "application/merge-patch+json",
    );
    while ((await hasClient()) !== want) await new Promise((r) => setTimeout(r, 2));
    samples.push(ms(t0));
  }
  const s = summary(samples);
  console.log(
    `\na pod's label change → the server's rules in the kernel (100 policies, real kube-apiserver watch), ${LABEL_RUNS} changes:`,
  );
  console.log(
    table(["", "p50 ms", "p95 ms", "p99 ms", "max ms"], [["label → enforced", s.median, s.p95, s.p99, s.max]]),
  );
} finally {
  engine?.stop();
  execFileSync("ip", ["netns", "delete", ns2]);
  fs.rmSync(dir, { recursive: true, force: true });
  await cp.stop();
}
