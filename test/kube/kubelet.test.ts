// The add-on as an operator installs it, run by a real kubelet: a lab VM is a Kubernetes node
// (containerd + kubelet 1.20.2 confined to the VM's namespaces, helpers/kubelet.ts) of the test's
// control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler). `kubectl apply -k`
// of the shipped manifests (an overlay that only names the lab's cloud, network and API address)
// → the DaemonSet's pod installs tcnp on the node and runs the agent, the node loses its not-ready
// taint; a Pod gets a Neutron address the outside client reaches; a rolling update of the DaemonSet
// leaves it answering; `kubectl delete` gives the address back. The cloud's auth_url is a host
// name that only the node's own resolver knows, and the cluster's DNS (an address the kubelet gives
// ClusterFirst pods) has nothing behind it, as before a CNI has started any pod: the add-on must not
// need cluster DNS to start (issue 22 item 1).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { NOT_READY_TAINT } from "../../src/agent/node.js";
import type { KubeNode as NodeObject } from "../../src/controller/kube.js";
import type { Relay } from "../../src/lab/relay.js";
import { buildPauseImage, PAUSE_IMAGE } from "../helpers/containerd.js";
import { e2eSkipReason, REFERENCE_CNI_DIR, repoRoot } from "../helpers/cni.js";
import { controlPlaneSkipReason, startControlPlane, type ControlPlane } from "../helpers/kube-real.js";
import { kubeletSkipReason, startKubeNode, type KubeNode } from "../helpers/kubelet.js";
import { proxyLoopback } from "../helpers/loopback-proxy.js";
import { rootSkipReason } from "../helpers/root.js";
import { MIX_NET, ROUTER, World, type VmHandle } from "../helpers/world.js";

const skip =
  controlPlaneSkipReason() ??
  kubeletSkipReason() ??
  rootSkipReason("containerd", "containerd-shim-runc-v2", "runc", "ctr", "umoci", "skopeo", "nsenter", "unshare") ??
  e2eSkipReason();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** The cloud's host name: the node's resolver knows it, cluster DNS does not exist. */
const CLOUD_NAME = "keystone.tcnp-lab.test";

interface Pod {
  metadata: { name: string; uid: string };
  spec: { nodeName?: string };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: Array<{ ready: boolean; restartCount: number }>;
  };
}

describe("the add-on on a real kubelet in a lab VM", { skip: skip ?? false }, () => {
  let w: World;
  let vm: VmHandle;
  let cp: ControlPlane;
  let relay: Relay | undefined;
  let node: KubeNode | undefined;
  let dir: string;
  let ext = "";
  let dns: ReturnType<typeof spawn> | undefined;
  before(async () => {
    w = await World.start({ vms: 1, home: "mix" });
    vm = w.vms[0]!;
    ext = `${w.prefix}-ext`;
    dir = path.join(w.dir, "kube");
    fs.mkdirSync(dir);
    const r = spawnSync("bash", [path.join(repoRoot, "scripts", "image.sh"), path.join(dir, "image")], {
      cwd: repoRoot,
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    cp = await startControlPlane({ controllerManager: true, scheduler: true });
    const apiPort = Number(new URL(cp.url).port);
    relay = await proxyLoopback(vm.ns, [apiPort]);
    // The node's resolver: a DNS server in the VM that knows the cloud's name.
    dns = spawn(
      "ip",
      [
        "netns",
        "exec",
        vm.nsName,
        process.execPath,
        path.join(repoRoot, "build/test/helpers/tiny-dns.js"),
        vm.ip,
        "53",
        `${CLOUD_NAME}=${new URL(w.authUrl).hostname}`,
      ],
      { stdio: "ignore" },
    );
    node = await startKubeNode({
      resolvConf: `nameserver ${vm.ip}\n`,
      clusterDns: "10.96.0.10",
      cp,
      netns: vm.nsName,
      dir: path.join(dir, "node"),
      name: vm.name,
      ip: vm.ip,
      server: cp.url,
      loopbackPlugin: path.join(REFERENCE_CNI_DIR, "loopback"),
      images: [path.join(dir, "image", "tcnp-image.tar"), buildPauseImage(path.join(dir, "pause"))],
    });
    writeOverlay(path.join(dir, "overlay"), apiPort);
  });
  after(async () => {
    dns?.kill();
    await node?.stop();
    await relay?.close();
    await cp?.stop();
    await w?.stop();
  });

  /**
   * The shipped mix example, copied as its comment says, with what an operator sets for this cloud:
   * credentials, network, router, image; and the API address (no kube-proxy in this lab).
   */
  function writeOverlay(o: string, apiPort: number): void {
    // The tag scripts/image.sh gives the image it built (package.json's version).
    const imageVersion = (
      JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string }
    ).version;
    fs.cpSync(path.join(repoRoot, "deploy", "kubernetes", "examples", "mix"), o, { recursive: true });
    const edit = (file: string, f: (text: string) => string): void =>
      fs.writeFileSync(path.join(o, file), f(fs.readFileSync(path.join(o, file), "utf8")));
    const conflist = JSON.parse(fs.readFileSync(path.join(o, "10-tcnp.conflist"), "utf8")) as {
      plugins: Array<{ ipam: { neutronConf: Record<string, unknown>; pool: Record<string, unknown> } }>;
    };
    // The example's scaling defaults (a /26 per node) on the lab's own network, a smaller pool.
    conflist.plugins[0]!.ipam.neutronConf["networks"] = [MIX_NET];
    conflist.plugins[0]!.ipam.pool["warmTarget"] = 3;
    fs.writeFileSync(path.join(o, "10-tcnp.conflist"), JSON.stringify(conflist, null, 2));
    const clouds = [
      "clouds:",
      "  tcnp:",
      "    auth:",
      `      auth_url: ${w.authUrl.replace(new URL(w.authUrl).hostname, CLOUD_NAME)}`,
      "      username: admin",
      "      password: secret",
      "      project_name: admin",
      "      user_domain_name: default",
      "      project_domain_name: default",
      "",
    ].join("\n");
    fs.writeFileSync(path.join(o, "node-clouds.yaml"), clouds);
    fs.writeFileSync(path.join(o, "controller-clouds.yaml"), clouds);
    edit("controller.yaml", (t) =>
      t.replace(/routerId: .*/, `routerId: ${ROUTER}`).replace(/networks:\n {2}- .*/, `networks:\n  - ${MIX_NET}`),
    );
    // No kube-proxy in the lab: the API's address for the pods on the host network (as for a CNI
    // that must run before kube-proxy).
    const apiEnv = [
      `            - { name: KUBERNETES_SERVICE_HOST, value: "127.0.0.1" }`,
      `            - { name: KUBERNETES_SERVICE_PORT, value: "${apiPort}" }`,
    ];
    const patch = [
      "apiVersion: apps/v1",
      "kind: DaemonSet",
      "metadata: { name: tcnp-node, namespace: tcnp-system }",
      "spec:",
      "  template:",
      "    spec:",
      "      containers:",
      "        - name: agent",
      "          env:",
      ...apiEnv,
      "---",
      "apiVersion: apps/v1",
      "kind: Deployment",
      "metadata: { name: vrouter-route-controller, namespace: tcnp-system }",
      "spec:",
      "  template:",
      "    spec:",
      "      containers:",
      "        - name: controller",
      "          env:",
      ...apiEnv,
      "",
    ].join("\n");
    fs.writeFileSync(path.join(o, "patch.yaml"), patch);
    edit(
      "kustomization.yaml",
      (t) =>
        `${t
          .replace("  - ../../base", `  - ${path.relative(o, path.join(repoRoot, "deploy", "kubernetes", "base"))}`)
          .replace("newName: registry.example/tcnp", "newName: localhost/tcnp")
          .replace(/newTag: .*/, `newTag: "${imageVersion}"`)}patchesStrategicMerge:\n  - patch.yaml\n`,
    );
  }

  const getPod = (ns: string, name: string): Promise<Pod> =>
    cp.api<Pod>("GET", `/api/v1/namespaces/${ns}/pods/${name}`);
  const listPods = async (ns: string, selector: string): Promise<Pod[]> =>
    (
      await cp.api<{ items: Pod[] }>(
        "GET",
        `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`,
      )
    ).items;
  const ready = (p: Pod): boolean =>
    p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
  async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f().catch(() => undefined);
      if (v !== undefined) return v;
      if (Date.now() > end)
        throw new Error(
          `${what}: not within ${ms / 1000} s\n${cp.kubectl(["get", "pods", "-A", "-o", "wide"])}\n` +
            `${cp.kubectl(["get", "events", "-A"]).slice(-3000)}\n--- kubelet\n${node!.log().slice(-4000)}\n` +
            `--- containerd\n${node!.containerd.log().slice(-3000)}\n--- agent\n${agentLog().slice(-3000)}`,
        );
      await sleep(500);
    }
  }
  /** `tcnp agent status --json` on the node, answered by the agent in the DaemonSet's pod. */
  const agentStatus = (): { pools: Array<{ free: string[]; inUse: number; cooling: number }> } => {
    const argv = node!.exec([path.join(repoRoot, "dist", "tcnp"), "agent", "status", "--json"]);
    return JSON.parse(execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" })) as ReturnType<typeof agentStatus>;
  };
  const agentLog = (): string => {
    const f = node!.hostPath("/var/log/tcnp/agent.log");
    return fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
  };
  const ping = (ip: string): boolean =>
    spawnSync("ip", ["netns", "exec", ext, "ping", "-c", "1", "-W", "2", ip]).status === 0;

  it("kubectl apply -k: tcnp-node runs on the node, installs tcnp, its agent gets Ready and untaints the node", async () => {
    cp.kubectl(["apply", "--server-side", "-k", path.join(dir, "overlay")]);
    const agent = await until("a Ready tcnp-node pod", async () => {
      const pods = await listPods("tcnp-system", "app.kubernetes.io/name=tcnp-node");
      return pods.find((p) => p.spec.nodeName === vm.name && ready(p));
    });
    assert.equal(agent.status.phase, "Running");
    // The init container installed the plugins and the 0600 configuration into the node's own paths.
    const conf = node!.hostPath("/etc/cni/net.d/10-tcnp.conflist");
    assert.equal(fs.statSync(conf).mode & 0o777, 0o600);
    assert.ok(!fs.readFileSync(conf, "utf8").includes("secret"), "no password in the network configuration");
    assert.ok(fs.existsSync(node!.hostPath("/opt/cni/bin/veth-route")));
    assert.equal(fs.statSync(node!.hostPath("/etc/tcnp/clouds.yaml")).mode & 0o777, 0o600);
    // The machine's own /etc and /opt are untouched.
    assert.ok(!fs.existsSync("/etc/tcnp") && !fs.existsSync("/opt/cni/bin/veth-route"));
    // The agent took the taint off once its pool was warm; the kubelet reports the node Ready.
    const n = await until("the node Ready without the not-ready taint", async () => {
      const x = await cp.api<NodeObject & { status: { conditions?: Array<{ type: string; status: string }> } }>(
        "GET",
        `/api/v1/nodes/${vm.name}`,
      );
      const isReady = x.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
      const tainted = (x.spec?.taints ?? []).some((t) => t.key === NOT_READY_TAINT);
      return isReady && !tainted ? x : undefined;
    });
    assert.equal(n.metadata.name, vm.name);
    // The route controller, non-root on the host network: one replica runs and holds the Lease; the
    // second waits for a node of its own (one node here; the health port is declared).
    const ctl = await until("a route controller holding the Lease", async () => {
      const pods = await listPods("tcnp-system", "app.kubernetes.io/name=vrouter-route-controller");
      const lease = await cp.api<{ spec: { holderIdentity?: string } }>(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/tcnp-system/leases/vrouter-route-controller",
      );
      const running = pods.filter((p) => p.status.phase === "Running" && ready(p));
      return running.length === 1 && lease.spec.holderIdentity !== undefined ? { pods, running } : undefined;
    });
    assert.equal(ctl.pods.length, 2);
    assert.equal(ctl.pods.filter((p) => p.status.phase === "Pending").length, 1);
    assert.equal(ctl.running[0]!.status.containerStatuses?.[0]?.restartCount, 0);
    // Both serve /metrics on the node's address, where the annotations send a Prometheus.
    for (const port of [9798, 9797]) {
      const r = spawnSync("ip", ["netns", "exec", vm.nsName, "curl", "-sf", `http://${vm.ip}:${port}/metrics`], {
        encoding: "utf8",
      });
      assert.equal(r.status, 0, `metrics on ${vm.ip}:${port}: ${r.stderr}`);
      assert.match(r.stdout, /^# TYPE \S+_duration_seconds histogram$/m);
    }
  });

  let podIp = "";
  it("a Pod → Running with an address of the VM's Neutron port, reached from the outside client", async () => {
    cp.kubectl(
      ["apply", "-f", "-"],
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "web", namespace: "default" },
        spec: {
          containers: [{ name: "web", image: PAUSE_IMAGE, imagePullPolicy: "Never" }],
          terminationGracePeriodSeconds: 1,
        },
      }),
    );
    const p = await until("the pod Running", async () => {
      const x = await getPod("default", "web");
      return x.status.phase === "Running" && x.status.podIP !== undefined ? x : undefined;
    });
    podIp = p.status.podIP!;
    assert.match(podIp, /^10\.10\.10\.\d+$/);
    assert.ok(w.vmPort(vm, MIX_NET).ips.includes(podIp), `${podIp} is a fixed IP of the VM's port`);
    assert.ok(ping(podIp), `the outside client (${ext}) reaches ${podIp}`);
    // Served by the agent in the DaemonSet's pod, from its warm pool.
    assert.equal(agentStatus().pools[0]!.inUse, 1);
  });

  it("a rolling update of tcnp-node leaves the running pod answering", async () => {
    const before = (await listPods("tcnp-system", "app.kubernetes.io/name=tcnp-node")).map((p) => p.metadata.uid);
    // Ping the pod from outside all through the update, 5 a second.
    const pinger = spawn("ip", ["netns", "exec", ext, "ping", "-i", "0.2", "-W", "1", podIp], { stdio: "pipe" });
    let out = "";
    pinger.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const t0 = Date.now();
    cp.kubectl(["rollout", "restart", "daemonset/tcnp-node", "-n", "tcnp-system"]);
    // The DaemonSet controller starts the new pod once the old pod object is gone, which this
    // kubelet (1.20) reports 5–60 s after the agent exited (it waits for its container GC).
    await until(
      "a new Ready tcnp-node pod",
      async () => {
        const pods = await listPods("tcnp-system", "app.kubernetes.io/name=tcnp-node");
        return pods.length === 1 && !before.includes(pods[0]!.metadata.uid) && ready(pods[0]!) ? pods[0] : undefined;
      },
      180_000,
    );
    process.stdout.write(`# rolling update of tcnp-node: new agent Ready after ${Date.now() - t0} ms\n`);
    await sleep(1000);
    const done = new Promise((r) => pinger.once("exit", r));
    pinger.kill("SIGINT");
    await done;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    assert.ok(m !== null, out);
    assert.ok(Number(m[1]) >= 10, out);
    assert.equal(m[2], m[1], `no reply lost during the update: ${out.split("\n").slice(-4).join("\n")}`);
  });

  it("kubectl delete: the pod's address leaves it (veth and route gone, back in the agent's pool, cooling)", async () => {
    const t0 = Date.now();
    cp.kubectl(["delete", "pod", "web", "-n", "default", "--wait=false"]);
    await until("the pod's host route gone", async () => {
      const routes = execFileSync("ip", ["-n", vm.nsName, "route", "show"], { encoding: "utf8" });
      return routes.includes(`${podIp} dev`) ? undefined : true;
    });
    const tDel = Date.now() - t0;
    const pool = agentStatus().pools[0]!;
    assert.equal(pool.inUse, 0, JSON.stringify(pool));
    assert.equal(pool.cooling, 1, `the address cools down in the pool (30 s by default): ${JSON.stringify(pool)}`);
    assert.ok(!ping(podIp), "nothing answers on the address any more");
    await until(
      "the pod object gone",
      async () =>
        (await getPod("default", "web").then(
          () => false,
          () => true,
        ))
          ? true
          : undefined,
      180_000,
    );
    process.stdout.write(
      `# kubectl delete: CNI DEL done after ${tDel} ms, the pod object gone after ${Date.now() - t0} ms\n`,
    );
  });
});
