// The agent's and the route controller's /metrics as a real Prometheus sees them (issue 22 item 4):
// Debian's prometheus 2.42 scrapes both (all three inside a VM's namespace), promtool accepts both
// texts, and a latency quantile of each comes out of histogram_quantile.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { distBinary, e2eSkipReason } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { execAsync, MIX_NET, ROUTER, World, type VmHandle } from "../helpers/world.js";

const skip = rootSkipReason("prometheus", "promtool") ?? e2eSkipReason();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("metrics a real Prometheus can use", { skip: skip ?? false }, () => {
  let w: World;
  let vm: VmHandle;
  const procs: ChildProcess[] = [];
  const inVm = (argv: string[]) => ["ip", "netns", "exec", vm.nsName, ...argv];

  before(async () => {
    w = await World.start({ vms: 1, home: "mix" });
    vm = w.vms[0]!;
    w.install(vm, "10-mix.conf", w.mixConf({}, { coolDownSeconds: 0, pool: { warmTarget: 3 } }));
    procs.push(w.startAgent(vm, ["--listen", "127.0.0.1:9798"]));
    const ctl = path.join(vm.dir, "controller.json");
    fs.writeFileSync(
      ctl,
      JSON.stringify({
        openstack: { authUrl: w.authUrl, username: "admin", password: "secret", project: "admin", domain: "default" },
        routerId: ROUTER,
        networks: [MIX_NET],
        intervalSeconds: 0.5,
        listen: "127.0.0.1:9797",
        kubernetes: { enabled: false },
      }),
      { mode: 0o600 },
    );
    const c = inVm([distBinary, "route-controller", "--config", ctl]);
    procs.push(spawn(c[0]!, c.slice(1), { stdio: "ignore" }));
    const cfg = path.join(vm.dir, "prometheus.yml");
    fs.writeFileSync(
      cfg,
      [
        "global:",
        "  scrape_interval: 1s",
        "scrape_configs:",
        "  - job_name: tcnp-agent",
        "    static_configs: [{ targets: ['127.0.0.1:9798'] }]",
        "  - job_name: vrouter-route-controller",
        "    static_configs: [{ targets: ['127.0.0.1:9797'] }]",
        "",
      ].join("\n"),
    );
    const argv = inVm([
      "prometheus",
      `--config.file=${cfg}`,
      `--storage.tsdb.path=${path.join(vm.dir, "tsdb")}`,
      "--web.listen-address=127.0.0.1:9090",
    ]);
    procs.push(spawn(argv[0]!, argv.slice(1), { stdio: "ignore" }));
  });
  after(async () => {
    for (const p of procs) p.kill("SIGTERM");
    await sleep(500);
    await w?.stop();
  });

  const get = async (url: string): Promise<string> => (await execAsync(inVm(["curl", "-sf", url]), w.env(vm))).stdout;
  const query = async (q: string): Promise<Array<{ value: [number, string] }>> =>
    (
      JSON.parse(await get(`http://127.0.0.1:9090/api/v1/query?query=${encodeURIComponent(q)}`)) as {
        data: { result: Array<{ value: [number, string] }> };
      }
    ).data.result;

  it("promtool accepts both /metrics; Prometheus scrapes them and answers histogram_quantile of each", async () => {
    for (let i = 0; i < 300 && ((await w.agentPools(vm))?.[0]?.free.length ?? 0) < 3; i++) await sleep(100);
    const podCycle = async (): Promise<void> => {
      const pod = await w.newPod("pm");
      assert.equal((await w.cni(vm, "add", pod)).status, 0);
      assert.equal((await w.cni(vm, "del", pod)).status, 0);
      await w.removePodNetns(pod.name);
    };
    for (let i = 0; i < 3; i++) await podCycle();
    for (const port of [9798, 9797]) {
      const text = await get(`http://127.0.0.1:${port}/metrics`);
      assert.match(text, /^# TYPE \S+_duration_seconds histogram$/m);
      const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
      assert.equal(r.status, 0, `promtool on :${port}: ${r.stdout}${r.stderr}`);
    }
    const quantiles = {
      agent:
        'histogram_quantile(0.9, sum by (le) (rate(tcnp_agent_request_duration_seconds_bucket{command="ADD"}[1m])))',
      controller: "histogram_quantile(0.5, sum by (le) (rate(tcnp_reconcile_duration_seconds_bucket[1m])))",
    };
    for (const [who, q] of Object.entries(quantiles)) {
      let v: number | undefined;
      // rate() needs two scrapes that both saw ADDs: pods keep starting until the quantile exists.
      for (let i = 0; i < 60 && (v === undefined || Number.isNaN(v)); i++) {
        const r = await query(q).catch(() => []);
        v = r[0] === undefined ? undefined : Number(r[0].value[1]);
        if (v === undefined || Number.isNaN(v)) await Promise.all([podCycle(), sleep(500)]);
      }
      assert.ok(v !== undefined && v > 0 && v < 10, `${who}: ${q} = ${v}`);
    }
    const up = await query("up");
    assert.equal(up.filter((r) => r.value[1] === "1").length, 2, "both targets up");
  });
});
