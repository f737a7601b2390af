// A build made where Go is missing has no tcnp-cni forwarder: `tcnp install` links the plugin names
// to the Node executable itself. Run under a plugin name, it hands the request to a running agent
// as the forwarder does (it used to serve every pod itself, beside the agent's warm pool); with no
// agent answering it serves the pod itself.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { distBinary, e2eSkipReason, REFERENCE_CNI_DIR } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { execAsync, MIX_NET, World, type VmHandle } from "../helpers/world.js";

const skip = rootSkipReason() ?? e2eSkipReason();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe(
  "a build without Go: the Node executable under a plugin name forwards to the agent",
  { skip: skip ?? false },
  () => {
    let w: World;
    let vm: VmHandle;
    let agent: ChildProcess | undefined;
    let bin = "";

    before(async () => {
      w = await World.start({ vms: 1, home: "mix" });
      vm = w.vms[0]!;
      w.install(vm, "10-mix.conf", w.mixConf({}, { coolDownSeconds: 0, pool: { warmTarget: 3 } }));
      // dist/ as `npm run build` leaves it on a machine without go: the executable alone.
      const dist = path.join(w.dir, "dist-nogo");
      fs.mkdirSync(dist);
      fs.copyFileSync(distBinary, path.join(dist, "tcnp"));
      fs.chmodSync(path.join(dist, "tcnp"), 0o755);
      bin = path.join(w.dir, "bin-nogo");
      const r = await execAsync([path.join(dist, "tcnp"), "install", "--bin-dir", bin], {
        PATH: process.env["PATH"] ?? "",
      });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });
    after(async () => {
      agent?.kill("SIGKILL");
      await w?.stop();
    });

    it("serves pods from the running agent's pool, and without an agent serves them itself", async () => {
      assert.equal(fs.readlinkSync(path.join(bin, "veth-route")), "tcnp", "the plugin names run the Node executable");
      assert.equal(fs.existsSync(path.join(bin, "tcnp-cni")), false);
      const env = { CNI_PATH: `${bin}:${REFERENCE_CNI_DIR}` };
      agent = w.startAgent(vm);
      for (let i = 0; i < 300 && ((await w.agentPools(vm))?.[0]?.free.length ?? 0) < 3; i++) await sleep(100);
      const pod = await w.newPod("ng");
      const add = await w.cni(vm, "add", pod, { env });
      assert.equal(add.status, 0, add.stdout + add.stderr);
      const ip = (JSON.parse(add.stdout) as { ips: Array<{ address: string }> }).ips[0]!.address.split("/")[0]!;
      const served = fs
        .readFileSync(path.join(vm.dir, "agent.log"), "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { msg: string; command?: string; containerId?: string; cloudCalls?: number })
        .filter((l) => l.msg === "CNI command done" && l.command === "ADD" && l.containerId === pod.id);
      assert.equal(served.length, 1, "the agent served the ADD");
      assert.equal(served[0]!.cloudCalls, 0, "from its warm pool, with no cloud call");
      assert.ok(w.vmPort(vm, MIX_NET).ips.includes(ip));
      const pluginLog = path.join(vm.dir, "tcnp.log");
      const ownWork = fs.existsSync(pluginLog)
        ? fs
            .readFileSync(pluginLog, "utf8")
            .split("\n")
            .filter((l) => l.includes(pod.id) && l.includes("CNI command done"))
        : [];
      assert.deepEqual(ownWork, [], "the plugin process did no work of its own");
      assert.equal((await w.cni(vm, "del", pod, { env })).status, 0);

      // No agent: the same executable serves the pod itself.
      agent.kill("SIGTERM");
      await new Promise((r) => agent!.once("exit", r));
      agent = undefined;
      const alone = await w.newPod("ng");
      const r = await w.cni(vm, "add", alone, { env });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(
        fs.readFileSync(pluginLog, "utf8"),
        new RegExp(`"containerId":"${alone.id}".*"CNI command done"|"CNI command done".*"containerId":"${alone.id}"`),
      );
      assert.equal((await w.cni(vm, "del", alone, { env })).status, 0);
    });
  },
);
