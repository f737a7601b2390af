// scripts/k8s/cluster.sh: the two-node lab cluster by hand, and Kubernetes' e2e network tests on it.
//   up [--mode mix|eni] [--dir DIR]   bring it up and keep it up (in the background: cluster.sh)
//   down [--dir DIR]                  take it down
//   e2e [--suite ci|policy|full] [--modes mix,eni] [--nodes N] [--dir DIR]
//                                     for each mode: a fresh cluster, the suite (in N parallel
//                                     processes of e2e.test, 4 by default), the table
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { E2E_NODES, runE2e, SUITES, table, type E2eResult } from "./e2e-run.js";
import { K8S_DIR } from "./kube-real.js";
import { startLabCluster, type ClusterMode } from "./lab-cluster.js";
import { demoTable, policyDemo, writeDemo, type DemoRow } from "./policy-demo.js";

const say = (l: string): void =>
  void process.stderr.write(`[cluster ${new Date().toISOString().slice(11, 19)}] ${l}\n`);

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      mode: { type: "string", default: "mix" },
      modes: { type: "string", default: "mix,eni" },
      suite: { type: "string", default: "ci" },
      dir: { type: "string", default: "/tmp/tcnp-k8s-lab" },
      nodes: { type: "string", default: String(E2E_NODES) },
    },
  });
  const dir = values.dir!;
  const stateFile = path.join(dir, "cluster.json");
  switch (cmd) {
    case "up": {
      const mode = values.mode as ClusterMode;
      if (mode !== "mix" && mode !== "eni") return (say("--mode is mix or eni"), 2);
      if (fs.existsSync(stateFile)) return (say(`a cluster is up (${stateFile}): down first`), 1);
      const c = await startLabCluster({ mode, dir, say });
      // The sample NetworkPolicy and its connectivity matrix (issue 24), shown by cluster.sh up.
      const rows = await policyDemo(c, say).catch(async (e: unknown) => {
        await c.stop();
        throw e;
      });
      writeDemo(dir, rows);
      const kubectl = `ip netns exec ${c.w.vms[2]!.nsName} ${path.join(K8S_DIR, "debs", "root", "usr", "bin", "kubectl")} --kubeconfig ${c.cp.adminKubeconfig}`;
      fs.writeFileSync(
        stateFile,
        JSON.stringify({
          pid: process.pid,
          mode,
          kubeconfig: c.cp.adminKubeconfig,
          netns: c.w.vms[2]!.nsName,
          kubectl,
        }),
      );
      say(`up; reach it with: ${kubectl} get nodes -o wide`);
      // The test helpers' own handlers delete the namespaces and exit at once: here the processes
      // in them stop first (c.stop removes the namespaces last).
      process.removeAllListeners("SIGTERM").removeAllListeners("SIGINT");
      await new Promise<void>((resolve) => {
        process.once("SIGTERM", resolve);
        process.once("SIGINT", resolve);
      });
      say("taking the cluster down");
      await c.stop();
      fs.rmSync(stateFile, { force: true });
      return 0;
    }
    case "down": {
      if (!fs.existsSync(stateFile)) return (say("no cluster is up"), 0);
      const { pid } = JSON.parse(fs.readFileSync(stateFile, "utf8")) as { pid: number };
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        fs.rmSync(stateFile, { force: true });
        return 0;
      }
      for (let i = 0; i < 600; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          return 0;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      say(`process ${pid} did not stop`);
      return 1;
    }
    case "e2e": {
      const suite = SUITES[values.suite as keyof typeof SUITES];
      if (suite === undefined) return (say("--suite is ci, policy or full"), 2);
      const rows: E2eResult[] = [];
      const demo: DemoRow[] = [];
      // Stopped by a signal: the cluster's processes stop first, then their namespaces go.
      let current: { stop(): Promise<void> } | undefined;
      // Ours alone: the test helpers' handlers (World.start adds one) delete the namespaces and exit
      // at once, which would leave the cluster's processes behind.
      const takeSignals = (): void => {
        process.removeAllListeners("SIGTERM").removeAllListeners("SIGINT");
        for (const sig of ["SIGTERM", "SIGINT"] as const)
          process.once(sig, () => {
            say(`${sig}: taking the cluster down`);
            void (current?.stop() ?? Promise.resolve()).finally(() => process.exit(1));
          });
      };
      takeSignals();
      const nodes = Number(values.nodes);
      if (!Number.isInteger(nodes) || nodes < 1) return (say("--nodes is a whole number of processes, 1 or more"), 2);
      for (const mode of values.modes!.split(",") as ClusterMode[]) {
        const c = await startLabCluster({ mode, dir: path.join(dir, `e2e-${mode}`), say });
        current = c;
        takeSignals();
        try {
          say(`e2e.test (${values.suite}) on the ${mode} cluster`);
          rows.push(
            ...(await runE2e(c, suite, {
              reportDir: path.join(dir, `e2e-${mode}`, "report"),
              nodes,
              say,
            })),
          );
          demo.push(...(await policyDemo(c, say)));
        } finally {
          await c.stop();
        }
      }
      process.stdout.write(table(rows));
      process.stdout.write(`\nthe sample NetworkPolicy's matrix:\n${demoTable(demo)}`);
      return rows.some((r) => r.result === "failed") || demo.some((r) => r.got !== r.expect) ? 1 : 0;
    }
    default:
      say("usage: cluster.sh up [--mode mix|eni] | down | e2e [--suite ci|policy|full] [--modes mix,eni] [--nodes N]");
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    say(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
