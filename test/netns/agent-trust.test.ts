// What the node agent accepts on its socket (issue 21 items 4, 5 and 7), black-box through the built
// executable: a request whose configuration is not the installed one is refused before the agent
// touches anything (it used to POST the node's credential to an authUrl the request named and keep
// a pool for it for good, leaving the node not ready); a uid-0 peer without CAP_NET_ADMIN (a
// container's root) is not served; clients that connect and say nothing are let go.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { distBinary, e2eSkipReason } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { execAsync, World, type VmHandle } from "../helpers/world.js";

const skip = rootSkipReason() ?? e2eSkipReason();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("the node agent serves only installed configurations and trusted peers", { skip: skip ?? false }, () => {
  let w: World;
  let vm: VmHandle;
  let agent: ChildProcess | undefined;
  let plugin = "";
  const port = 18599;

  before(async () => {
    w = await World.start({ vms: 1, home: "mix" });
    vm = w.vms[0]!;
    w.install(vm, "10-mix.conf", w.mixConf({}, { coolDownSeconds: 0, pool: { warmTarget: 2 } }));
    // The node's credential, root-only, as tcnp install leaves it.
    fs.writeFileSync(
      path.join(vm.dir, "clouds.yaml"),
      "clouds:\n  node:\n    auth:\n      auth_url: http://127.0.0.1:1/v3\n      username: admin\n      password: node-secret-7d1f\n      project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n",
      { mode: 0o600 },
    );
    // A plugin name that runs the Node executable (it forwards to the agent, as tcnp-cni does).
    const dir = path.join(w.dir, "attacker");
    fs.mkdirSync(dir);
    fs.copyFileSync(distBinary, path.join(dir, "tcnp"));
    fs.chmodSync(path.join(dir, "tcnp"), 0o755);
    fs.symlinkSync("tcnp", path.join(dir, "veth-route"));
    plugin = path.join(dir, "veth-route");
    agent = w.startAgent(vm, ["--listen", "127.0.0.1:9798"]);
    for (let i = 0; i < 300 && ((await w.agentPools(vm))?.[0]?.free.length ?? 0) < 2; i++) await sleep(100);
  });
  after(async () => {
    agent?.kill("SIGKILL");
    await w?.stop();
  });

  const readyz = async (): Promise<string> =>
    (
      await execAsync(
        [
          "ip",
          "netns",
          "exec",
          vm.nsName,
          "curl",
          "-s",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "http://127.0.0.1:9798/readyz",
        ],
        w.env(vm),
      )
    ).stdout;

  it("refuses a configuration that is not the installed one, and sends the node's credential nowhere", async () => {
    assert.equal(await readyz(), "200");
    // The attacker's listener, in the VM's namespace: what reaches it is what the agent sent.
    const received: string[] = [];
    const catcher = execAsync(
      ["ip", "netns", "exec", vm.nsName, "timeout", "8", "socat", "-u", `TCP-LISTEN:${port},reuseaddr,fork`, "STDOUT"],
      w.env(vm),
    ).then((r) => received.push(r.stdout));
    await sleep(300);
    const installed = w.mixConf({}, { coolDownSeconds: 0, pool: { warmTarget: 2 } }) as Record<string, unknown>;
    const ipam = installed["ipam"] as Record<string, unknown>;
    const evil = {
      ...installed,
      ipam: {
        ...ipam,
        openstackConf: {
          cloud: "node",
          cloudsYaml: path.join(vm.dir, "clouds.yaml"),
          authUrl: `http://127.0.0.1:${port}/v3`,
        },
        pool: { warmTarget: 50 },
      },
    };
    const pod = await w.newPod("ev");
    const r = await execAsync(
      ["ip", "netns", "exec", vm.nsName, plugin],
      w.env(vm, { CNI_COMMAND: "ADD", CNI_CONTAINERID: pod.id, CNI_NETNS: pod.path, CNI_IFNAME: "eth0" }),
      JSON.stringify(evil),
    );
    assert.notEqual(r.status, 0);
    const err = JSON.parse(r.stdout) as { code: number; msg: string; details?: string };
    assert.equal(err.code, 7, r.stdout);
    assert.match(`${err.msg} ${err.details ?? ""}`, /differs from the one installed in .*10-mix\.conf/);
    assert.doesNotMatch(r.stdout + r.stderr, /node-secret/);
    await catcher;
    assert.doesNotMatch(received.join(""), /node-secret|auth/, "nothing reached the attacker's listener");
    const pools = (await w.agentPools(vm)) ?? [];
    assert.equal(pools.length, 1, "no pool for a configuration that is not installed");
    assert.equal(await readyz(), "200", "the node stays ready");
    assert.doesNotMatch(fs.readFileSync(path.join(vm.dir, "agent.log"), "utf8"), /node-secret/);
  });

  it("does not serve a root peer whose capabilities were dropped (a container's root)", async () => {
    const pod = await w.newPod("cap");
    const env = w.env(vm, { CNI_COMMAND: "ADD", CNI_CONTAINERID: pod.id, CNI_NETNS: pod.path, CNI_IFNAME: "eth0" });
    const conf = JSON.stringify(w.mixConf({}, { coolDownSeconds: 0, pool: { warmTarget: 2 } }));
    const r = await execAsync(
      ["ip", "netns", "exec", vm.nsName, "setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", plugin],
      env,
      conf,
    );
    assert.notEqual(r.status, 0, r.stdout);
    assert.match(r.stdout, /does not serve this peer: process \d+ lacks CAP_NET_ADMIN/);
    // The same request from the runtime (all capabilities) is served.
    const ok = await execAsync(["ip", "netns", "exec", vm.nsName, plugin], env, conf);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.equal(
      (await execAsync(["ip", "netns", "exec", vm.nsName, plugin], { ...env, CNI_COMMAND: "DEL" }, conf)).status,
      0,
    );
  });

  it("lets idle clients go: a crowd that connects and says nothing does not keep a pod from being served", async () => {
    const sock = w.env(vm)["TCNP_AGENT_SOCKET"]!;
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 300; i++) {
        const c = net.createConnection(sock);
        c.on("error", () => {});
        idle.push(c);
      }
      await sleep(500);
      const pod = await w.newPod("idle");
      const add = await w.cni(vm, "add", pod);
      assert.equal(add.status, 0, `${add.stdout}${add.stderr}`);
      assert.equal((await w.cni(vm, "del", pod)).status, 0);
      // After the idle time (10 s) the agent has closed them.
      await sleep(11_000);
      assert.ok(
        idle.every((c) => c.destroyed || c.readableEnded),
        "idle connections were closed by the agent",
      );
    } finally {
      for (const c of idle) c.destroy();
    }
  });
});
