// Kubernetes' own e2e suite (e2e.test 1.20.2, built from Debian's source by build-e2e.sh) against a
// lab cluster: the selection, why each left-out test is left out, the run, and its JUnit report as
// a table of test, mode, result and reason.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { K8S_DIR } from "./kube-real.js";
import type { LabCluster } from "./lab-cluster.js";

export interface E2eSelection {
  /** Go regular expressions, joined with | for --ginkgo.focus. */
  focus: string[];
  /** Tests the focus takes but that cannot run here, each with the reason printed in the table. */
  skip: Array<{ pattern: string; reason: string }>;
}

/** Why a test is left out here, by what its name says it needs. */
export const NOT_HERE: E2eSelection["skip"] = [
  {
    pattern: "DNS|FQDN",
    reason:
      "judges a full CoreDNS (SRV, PTR, search paths through probes); the lab's cluster DNS answers A records only",
  },
  {
    pattern: "LoadBalancer|ESIPP|\\[Feature:Ingress|GCE|\\[Provider:",
    reason: "needs a cloud load balancer or provider",
  },
  // (the NetworkPolicy test "should not allow access by TCP when a policy specifies only SCTP" probes
  // with TCP only: it runs)
  { pattern: "SCTPConnectivity|\\[sig-network\\] SCTP", reason: "this kernel has no SCTP sockets" },
  { pattern: "IPv6|DualStack|\\[Feature:IPv6", reason: "the lab's pods are IPv4 only" },
  { pattern: "\\[Disruptive\\]|\\[Slow\\]|\\[Serial\\]", reason: "disruptive, slow or serial (not part of this run)" },
  { pattern: "\\[Feature:(?!NetworkPolicy|SCTP\\])", reason: "an optional feature this cluster does not enable" },
  {
    pattern: "ExternalName|externalname",
    reason: "needs CNAME records (the lab's cluster DNS answers A records only)",
  },
  {
    pattern: "should be able to up and down services",
    reason: "needs SSH to the nodes (the test restarts kube-proxy with it)",
  },
  {
    pattern: "should work after restarting kube-proxy|should work after restarting apiserver",
    reason: "needs SSH to the nodes",
  },
  {
    pattern: "kube-proxy should set TCP CLOSE_WAIT",
    reason: "needs the conntrack tool in the test image and host-side SSH",
  },
  { pattern: "Networking IPerf", reason: "needs iperf in the agnhost image" },
  { pattern: "should check kube-proxy urls", reason: "needs SSH to the nodes" },
];

/** The runs this project makes. */
export const SUITES = {
  /** The four Granular Checks conformance tests and the Services subset: every change, in CI. */
  ci: {
    focus: [
      "\\[sig-network\\] Networking Granular Checks: Pods",
      "\\[sig-network\\] Services should (serve a basic endpoint from pods|serve multiport endpoints from pods|be able to create a functioning NodePort service|have session affinity work for service with type clusterIP|be able to switch session affinity for service with type clusterIP|find a service from listing all namespaces|provide secure master service|release NodePorts on delete|check NodePort out-of-range|prevent NodePort collisions|create endpoints for unready pods|be able to change the type from ClusterIP to NodePort|have session affinity work for NodePort service|test the lifecycle of an Endpoint|delete a collection of services)",
    ],
    skip: NOT_HERE,
  },
  /** The NetworkPolicy tests (issue 24's judge). */
  policy: { focus: ["\\[sig-network\\] NetworkPolicy"], skip: NOT_HERE },
  /** Everything of sig-network this lab can run, NetworkPolicy included. */
  full: {
    focus: [
      "\\[sig-network\\] Networking",
      "\\[sig-network\\] Services",
      "\\[sig-network\\] NetworkPolicy",
      "\\[sig-network\\] Conntrack",
      "\\[sig-network\\] HostPort",
      "\\[sig-network\\] EndpointSlice",
      "\\[sig-network\\] Proxy",
    ],
    skip: NOT_HERE,
  },
} satisfies Record<string, E2eSelection>;

export interface E2eResult {
  name: string;
  mode: string;
  result: "passed" | "failed" | "skipped";
  reason: string;
  seconds: number;
}

/** Parallel processes of e2e.test a run uses unless told otherwise. */
export const E2E_NODES = 4;

/** Go's RE2 and JavaScript agree on what these patterns use; (?! is not RE2: JavaScript only. */
const jsRe = (p: string): RegExp => new RegExp(p);

export async function runE2e(
  c: LabCluster,
  sel: E2eSelection,
  o: { reportDir: string; timeoutMinutes?: number; nodes?: number; say?: (l: string) => void },
): Promise<E2eResult[]> {
  fs.mkdirSync(o.reportDir, { recursive: true });
  const focus = sel.focus.join("|");
  // RE2 has no look-ahead: the skip given to ginkgo leaves such patterns out; they are applied below.
  const goSkip = sel.skip
    .map((s) => s.pattern)
    .filter((p) => !p.includes("(?!"))
    .join("|");
  // Most of a NetworkPolicy test is waiting for a probe that must time out: ginkgo's runner splits
  // the suite over `nodes` processes of e2e.test (as upstream's hack/ginkgo-e2e.sh does), each with
  // its own namespaces; tests marked [Serial] are left out above.
  const nodes = o.nodes ?? E2E_NODES;
  const argv = c.cp.exec([
    path.join(K8S_DIR, "bin", "ginkgo"),
    `-nodes=${nodes}`,
    "-noColor",
    "-v",
    `-focus=${focus}`,
    `-skip=${goSkip}`,
    path.join(K8S_DIR, "bin", "e2e.test"),
    "--",
    `--kubeconfig=${c.cp.adminKubeconfig}`,
    "--provider=skeleton",
    `--kubectl-path=${path.join(K8S_DIR, "debs", "root", "usr", "bin", "kubectl")}`,
    `--report-dir=${o.reportDir}`,
    "--num-nodes=2",
    "--node-os-distro=debian",
    "--allowed-not-ready-nodes=0",
    "--system-pods-startup-timeout=2m",
    "--dump-logs-on-failure=false",
  ]);
  const log = path.join(o.reportDir, "e2e.log");
  const fd = fs.openSync(log, "w");
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", fd, fd], cwd: o.reportDir });
  fs.closeSync(fd);
  // A test that hangs must not hang the run: the suite is stopped (its report says so).
  const timer = setTimeout(() => child.kill("SIGTERM"), (o.timeoutMinutes ?? 60) * 60_000);
  await new Promise<void>((resolve) => child.once("exit", () => resolve()));
  clearTimeout(timer);
  const text = fs.readFileSync(log, "utf8");
  // One report per process (junit_01.xml …); a test appears in the report of the process that ran it.
  const junits = fs.readdirSync(o.reportDir).filter((f) => /^junit.*\.xml$/.test(f));
  if (junits.length === 0) throw new Error(`e2e.test wrote no JUnit report:\n${text.slice(-4000)}`);
  return mergeRuns(
    junits.map((f) => parseJunit(fs.readFileSync(path.join(o.reportDir, f), "utf8"), text, sel, c.mode)),
  );
}

/** The reports of parallel processes as one: a test run by one process is "skipped" in the others. */
export function mergeRuns(runs: E2eResult[][]): E2eResult[] {
  const rank = { failed: 2, passed: 1, skipped: 0 } as const;
  const best = new Map<string, E2eResult>();
  for (const r of runs.flat()) {
    const had = best.get(r.name);
    if (had === undefined || rank[r.result] > rank[had.result]) best.set(r.name, r);
  }
  return [...best.values()].sort((a, b) => a.name.localeCompare(b.name));
}

const unxml = (s: string): string =>
  s
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&#xA;/g, "\n")
    .replace(/&amp;/g, "&");

/** The tests the focus took: passed, failed (with the first line of the failure) or skipped (with why). */
export function parseJunit(xml: string, log: string, sel: E2eSelection, mode: string): E2eResult[] {
  const focus = sel.focus.map(jsRe);
  const out: E2eResult[] = [];
  for (const m of xml.matchAll(
    /<testcase name="([^"]*)" classname="[^"]*"(?: status="[^"]*")? time="([^"]*)"(\/>|>([\s\S]*?)<\/testcase>)/g,
  )) {
    const name = unxml(m[1]!).trim();
    if (!focus.some((f) => f.test(name))) continue;
    const body = m[4] ?? "";
    const seconds = Number(m[2]);
    const mine = sel.skip.find((s) => jsRe(s.pattern).test(name));
    if (body.includes("<failure")) {
      const msg = unxml(/<failure[^>]*>([\s\S]*?)<\/failure>/.exec(body)?.[1] ?? "").trim();
      // The first line names the framework's file; the second says what failed.
      const what = msg.split("\n").find((l, i) => i > 0 && l.trim() !== "") ?? msg.split("\n")[0]!;
      out.push({
        name,
        mode,
        result: "failed",
        reason: what
          .replace(/^\w{3} +\d+ [\d:.]+: /, "")
          .trim()
          .slice(0, 300),
        seconds,
      });
    } else if (body.includes("<skipped")) {
      out.push({ name, mode, result: "skipped", reason: mine?.reason ?? skipReasonInLog(log, name), seconds });
    } else if (mine !== undefined && seconds === 0) {
      out.push({ name, mode, result: "skipped", reason: mine.reason, seconds });
    } else out.push({ name, mode, result: "passed", reason: "", seconds });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** A test skipped at run time: the reason the framework printed ("[SKIPPING] … : reason"). */
function skipReasonInLog(log: string, name: string): string {
  const tail = name.split(" ").slice(-6).join(" ");
  const i = log.indexOf(tail);
  if (i < 0) return "skipped by the framework";
  const m = /\[SKIPPING\][^\n]*\n([^\n]+)/.exec(log.slice(i, i + 20_000));
  return m === null ? "skipped by the framework" : m[1]!.trim().slice(0, 200);
}

export function table(rows: E2eResult[]): string {
  const lines = ["| test | mode | result | reason / failure |", "|---|---|---|---|"];
  for (const r of rows)
    lines.push(`| ${r.name.replace(/\|/g, "\\|")} | ${r.mode} | ${r.result} | ${r.reason.replace(/\|/g, "\\|")} |`);
  const count = (k: E2eResult["result"]): number => rows.filter((r) => r.result === k).length;
  lines.push("", `${count("passed")} passed, ${count("failed")} failed, ${count("skipped")} skipped`);
  return `${lines.join("\n")}\n`;
}
