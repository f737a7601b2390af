// The lab cluster's NetworkPolicy demonstration: a web server and four clients (role=frontend or not,
// on the server's node or the other), a connectivity matrix to the server's pod address and to its
// Service before and after the shipped sample policy (deploy/kubernetes/examples/policy), which
// admits only frontends on TCP 8080. Used by `cluster.sh up` (printed) and the e2e test (asserted),
// on a cluster of either mode.
import * as fs from "node:fs";
import * as path from "node:path";
import type { LabCluster } from "./lab-cluster.js";
import { repoRoot } from "./cni.js";

export const SAMPLE_POLICY = path.join(
  repoRoot,
  "deploy",
  "kubernetes",
  "examples",
  "policy",
  "allow-frontend-to-web.yaml",
);
const NS = "tcnp-demo";
const AGNHOST = "k8s.gcr.io/e2e-test-images/agnhost:2.21";

export type Verdict = "allowed" | "denied";
export interface DemoRow {
  mode: string;
  policy: "none" | "sample";
  from: string;
  via: "pod address" | "Service";
  expect: Verdict;
  got: Verdict;
}

const CLIENTS = [
  { name: "frontend-same-node", role: "frontend", node: 0 },
  { name: "frontend-other-node", role: "frontend", node: 1 },
  { name: "other-same-node", role: "other", node: 0 },
  { name: "other-other-node", role: "other", node: 1 },
] as const;

function pod(name: string, labels: Record<string, string>, node: string, args: string[], ports = false): unknown {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS, labels },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: "c",
          image: AGNHOST,
          args,
          ...(ports ? { ports: [{ name: "http", containerPort: 8080 }] } : {}),
        },
      ],
    },
  };
}

/** Runs the demonstration; the namespace is left for a look (the cluster goes with it). */
export async function policyDemo(c: LabCluster, say: (l: string) => void = () => {}): Promise<DemoRow[]> {
  const nodes = c.nodes.map((n) => n.name);
  // Never the blocking kubectl: the embedded cloud answers from this process.
  const k = (args: string[], input?: string): Promise<string> => c.cp.kubectlAsync(args, input);
  await k(["create", "namespace", NS]);
  const items = [
    pod("web", { app: "web" }, nodes[0]!, ["netexec", "--http-port=8080"], true),
    ...CLIENTS.map((cl) => pod(cl.name, { role: cl.role }, nodes[cl.node]!, ["pause"])),
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "web", namespace: NS },
      spec: { selector: { app: "web" }, ports: [{ port: 80, targetPort: 8080, protocol: "TCP" }] },
    },
  ];
  await k(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  say(`policy demo: ${CLIENTS.length + 1} pods in ${NS} on ${nodes.join(" and ")}`);
  await k(["wait", "-n", NS, "--for=condition=Ready", "pod", "--all", "--timeout=180s"]);
  const webIp = (await k(["get", "pod", "-n", NS, "web", "-o", "jsonpath={.status.podIP}"])).trim();
  const svcIp = (await k(["get", "service", "-n", NS, "web", "-o", "jsonpath={.spec.clusterIP}"])).trim();
  const connect = async (from: string, target: string): Promise<Verdict> => {
    try {
      await k(["exec", "-n", NS, from, "--", "/agnhost", "connect", target, "--timeout=2s"]);
      return "allowed";
    } catch {
      return "denied";
    }
  };
  const rows: DemoRow[] = [];
  const probe = async (policy: DemoRow["policy"]): Promise<void> => {
    for (const cl of CLIENTS)
      for (const [via, target] of [
        ["pod address", `${webIp}:8080`],
        ["Service", `${svcIp}:80`],
      ] as const) {
        const expect: Verdict = policy === "none" || cl.role === "frontend" ? "allowed" : "denied";
        // A rule change takes effect within a second or so (label → enforced); a probe that does
        // not match yet is asked again a few times before it counts.
        let got = await connect(cl.name, target);
        for (let i = 0; i < 4 && got !== expect; i++) {
          await new Promise((r) => setTimeout(r, 1000));
          got = await connect(cl.name, target);
        }
        rows.push({ mode: c.mode, policy, from: cl.name, via, expect, got });
      }
  };
  await probe("none");
  await k(["apply", "-n", NS, "-f", SAMPLE_POLICY]);
  say(`policy demo: applied ${path.relative(repoRoot, SAMPLE_POLICY)}`);
  await probe("sample");
  return rows;
}

/** The matrix as text, one line per probe. */
export function demoTable(rows: readonly DemoRow[]): string {
  const head = ["mode", "policy", "from", "to web by", "expected", "got", ""];
  const lines = rows.map((r) => [
    r.mode,
    r.policy,
    r.from,
    r.via,
    r.expect,
    r.got,
    r.got === r.expect ? "ok" : "WRONG",
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return (
    [head, ...lines]
      .map((l) =>
        l
          .map((x, i) => x.padEnd(w[i]!))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

/** Writes the matrix where `cluster.sh up` shows it. */
export function writeDemo(dir: string, rows: readonly DemoRow[]): void {
  fs.writeFileSync(path.join(dir, "policy-matrix.txt"), demoTable(rows));
}
