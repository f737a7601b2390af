// The node's lifecycle on a real control plane: the agent of a VM (eni pool, Nova failing at first)
// runs with the tcnp-node ServiceAccount's token under the shipped ClusterRole; its Node carries the
// not-ready taint while the pool cannot warm, loses it once the pool is warm, and shows the pod
// capacity as an annotation and the eni NIC slots as an extended resource the scheduler counts.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import * as path from "node:path";
import { CAPACITY_ANNOTATION, ENI_RESOURCE, NOT_READY_TAINT } from "../../src/agent/node.js";
import type { KubeNode } from "../../src/controller/kube.js";
import type { Relay } from "../../src/lab/relay.js";
import { e2eSkipReason, repoRoot } from "../helpers/cni.js";
import { controlPlaneSkipReason, startControlPlane, type ControlPlane } from "../helpers/kube-real.js";
import { proxyLoopback } from "../helpers/loopback-proxy.js";
import { rootSkipReason } from "../helpers/root.js";
import { World, type VmHandle } from "../helpers/world.js";

const skip = controlPlaneSkipReason() ?? rootSkipReason() ?? e2eSkipReason();
const NODE = "tcnp-vm-1";
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("node lifecycle kept by the agent (real kube-apiserver)", { skip: skip ?? false }, () => {
  let cp: ControlPlane;
  let w: World;
  let vm: VmHandle;
  let relay: Relay | undefined;
  let agent: ChildProcess | undefined;
  before(async () => {
    cp = await startControlPlane();
    cp.kubectl(["apply", "--server-side", "-k", path.join(repoRoot, "deploy", "kubernetes", "base")]);
    await cp.api("POST", "/api/v1/nodes", { metadata: { name: NODE } });
    w = await World.start({ vms: 1, home: "eni" });
    vm = w.vms[0]!;
    const conf = w.eniConf();
    const plugins = conf["plugins"] as Array<Record<string, unknown>>;
    plugins[0]!["ipam"] = { ...(plugins[0]!["ipam"] as object), pool: { warmTarget: 2, maximum: 6 } };
    w.install(vm, "10-cnichain.conflist", conf);
    relay = await proxyLoopback(vm.ns, [Number(new URL(cp.url).port)]);
  });
  after(async () => {
    agent?.kill("SIGKILL");
    await relay?.close();
    await w?.stop();
    await cp?.stop();
  });

  // The agent of the VM, keeping the Node with the tcnp-node ServiceAccount's token.
  const startNodeAgent = (token: string): ChildProcess =>
    w.startAgent(vm, [
      "--node-name",
      NODE,
      "--kube-api-url",
      cp.url,
      "--kube-token-file",
      token,
      "--kube-ca-cert",
      cp.caFile,
    ]);
  const node = (): Promise<KubeNode> => cp.api<KubeNode>("GET", `/api/v1/nodes/${NODE}`);
  const tainted = async (): Promise<boolean> =>
    ((await node()).spec?.taints ?? []).some((t) => t.key === NOT_READY_TAINT && t.effect === "NoSchedule");
  async function until(what: string, f: () => Promise<boolean>, ms = 30_000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await f())) {
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
      await sleep(200);
    }
  }

  it("taints the node until the eni pool is warm, then removes the taint; publishes the capacity", async () => {
    const token = await cp.serviceAccountToken("tcnp-system", "tcnp-node");
    // Nova failing: no pool NIC can be attached, the pool stays cold.
    w.em.addFault({ kind: "error", service: "compute", status: 500 });
    agent = startNodeAgent(token);
    await until("the not-ready taint", tainted);
    await sleep(2_000);
    assert.equal(await tainted(), true, "it stays while the pool cannot warm");

    const n = await node();
    assert.deepEqual(JSON.parse(n.metadata.annotations?.[CAPACITY_ANNOTATION] ?? "{}"), { mix: 0, eni: 6 });
    assert.equal(n.status?.capacity?.[ENI_RESOURCE], "6", "the eni NIC slots as an extended resource");

    w.em.clearFaults();
    await until("the taint to go once the pool is warm", async () => !(await tainted()), 60_000);
    const pools = (await w.agentPools(vm)) ?? [];
    assert.ok(pools.length === 1 && pools[0]!.ready && pools[0]!.free.length >= 2, JSON.stringify(pools));
    // The kubelet's own taints and the rest of the node are left alone.
    assert.equal((await node()).metadata.annotations?.[CAPACITY_ANNOTATION], JSON.stringify({ mix: 0, eni: 6 }));
  });

  it("an agent restarted with warm pools (an upgrade) does not taint the node again", async () => {
    const token = await cp.serviceAccountToken("tcnp-system", "tcnp-node");
    const gone = new Promise((r) => agent!.once("exit", r));
    agent!.kill("SIGTERM");
    await gone;
    agent = startNodeAgent(token);
    for (let i = 0; i < 20; i++) {
      assert.equal(await tainted(), false, "no taint while the new agent starts with the pool warm");
      await sleep(150);
    }
  });
});
