// A two-node Kubernetes cluster on the lab's small cloud, for Kubernetes' own e2e tests: three lab
// VMs on the emulated Neutron network; the third runs the control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, in its network namespace: the API and the kubelets reach
// each other over the lab's network, as on real VMs), the other two are nodes: containerd, the
// kubelet and kube-proxy (iptables mode) in each VM's namespaces, and tcnp installed from the
// shipped example overlay of the chosen mode (mix or eni) with kubectl, as an operator would.
// Traffic between the nodes' pods crosses the lab's Neutron network (mix) or its eni network, and
// the router for what leaves a subnet. Images are imported into each node's containerd (there is no
// registry): tcnp's, and agnhost, busybox and pause under the names the 1.20 e2e framework uses.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { REFERENCE_CNI_DIR, repoRoot } from "./cni.js";
import { K8S_DIR, startControlPlane, type ControlPlane } from "./kube-real.js";
import { startKubeNode, type KubeNode } from "./kubelet.js";
import { ENI_NET, MIX_NET, ROUTER, World } from "./world.js";

export type ClusterMode = "mix" | "eni";
export const E2E_IMAGES = ["agnhost", "busybox", "pause"] as const;
export const E2E_PAUSE = "k8s.gcr.io/pause:3.2";
const kubeProxyBin = path.join(K8S_DIR, "bin", "kube-proxy");

export interface LabCluster {
  mode: ClusterMode;
  w: World;
  cp: ControlPlane;
  nodes: KubeNode[];
  dir: string;
  /** Logs of everything, for a failure. */
  logs(): string;
  stop(): Promise<void>;
}

/** Build (once; cached outside the work tree) what the cluster needs: tcnp's image, the e2e images, kube-proxy. */
export function prepareClusterImages(dir: string): { tcnp: string; e2e: string[] } {
  const run = (argv: string[]): string => {
    const r = spawnSync(argv[0]!, argv.slice(1), { cwd: repoRoot, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stdout}${r.stderr}`);
    return r.stdout.trim().split("\n").pop()!;
  };
  run(["bash", path.join(repoRoot, "scripts", "k8s", "build-e2e.sh")]);
  const images = run(["bash", path.join(repoRoot, "scripts", "k8s", "e2e-images.sh")]);
  run(["bash", path.join(repoRoot, "scripts", "image.sh"), path.join(dir, "image")]);
  return {
    tcnp: path.join(dir, "image", "tcnp-image.tar"),
    e2e: E2E_IMAGES.map((n) => path.join(images, `${n}.tar`)),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startLabCluster(o: {
  mode: ClusterMode;
  dir: string;
  say?: (line: string) => void;
}): Promise<LabCluster> {
  const say = o.say ?? ((): void => {});
  fs.mkdirSync(o.dir, { recursive: true });
  say("building or checking the images (tcnp, agnhost, busybox, pause) and kube-proxy");
  const images = prepareClusterImages(o.dir);
  const w = await World.start({ vms: 3, home: "mix" });
  const nodes: KubeNode[] = [];
  const proxies: ChildProcess[] = [];
  let cp: ControlPlane | undefined;
  const stop = async (): Promise<void> => {
    for (const p of proxies) if (p.exitCode === null && p.signalCode === null) p.kill("SIGTERM");
    for (const n of nodes) await n.stop().catch(() => {});
    await cp?.stop().catch(() => {});
    await w.stop();
  };
  try {
    const [vm1, vm2, ctl] = [w.vms[0]!, w.vms[1]!, w.vms[2]!];
    say(`control plane in ${ctl.name} (${ctl.ip}): etcd, kube-apiserver, kube-controller-manager, kube-scheduler`);
    cp = await startControlPlane({
      controllerManager: true,
      scheduler: true,
      netns: { name: ctl.nsName, address: ctl.ip },
    });
    // The cluster's DNS (A records of Services and pods) in the control plane's VM, as CoreDNS would serve.
    say(`cluster DNS in ${ctl.name} (${ctl.ip}:53)`);
    cp.kubectl(["create", "serviceaccount", "cluster-dns", "-n", "kube-system"]);
    cp.kubectl([
      "create",
      "clusterrolebinding",
      "cluster-dns",
      "--clusterrole=view",
      "--serviceaccount=kube-system:cluster-dns",
    ]);
    const dnsToken = await cp.serviceAccountToken("kube-system", "cluster-dns");
    const dnsLog = fs.openSync(path.join(o.dir, "cluster-dns.log"), "a");
    const dns = spawn(
      "ip",
      [
        "netns",
        "exec",
        ctl.nsName,
        process.execPath,
        path.join(repoRoot, "build", "test", "helpers", "cluster-dns.js"),
      ].concat([ctl.ip, cp.url, dnsToken, cp.caFile]),
      { stdio: ["ignore", dnsLog, dnsLog] },
    );
    fs.closeSync(dnsLog);
    proxies.push(dns);
    const proxyConfig = cp.clientKubeconfig("system:kube-proxy");
    for (const vm of [vm1, vm2]) {
      say(`node ${vm.name} (${vm.ip}): containerd, kubelet, kube-proxy`);
      const node = await startKubeNode({
        cp,
        netns: vm.nsName,
        dir: path.join(o.dir, vm.name),
        name: vm.name,
        ip: vm.ip,
        server: cp.url,
        loopbackPlugin: path.join(REFERENCE_CNI_DIR, "loopback"),
        images: [images.tcnp, ...images.e2e],
        pauseImage: E2E_PAUSE,
        maxPods: 60,
        resolvConf: "nameserver 127.0.0.1\n",
        clusterDns: ctl.ip,
      });
      nodes.push(node);
      const log = fs.openSync(path.join(o.dir, vm.name, "kube-proxy.log"), "a");
      const argv = node.exec([
        kubeProxyBin,
        `--kubeconfig=${proxyConfig}`,
        `--hostname-override=${vm.name}`,
        "--proxy-mode=iptables",
        `--bind-address=${vm.ip}`,
        // Pod addresses are Neutron's: the lab's networks.
        "--cluster-cidr=10.10.0.0/16",
        "--healthz-bind-address=127.0.0.1:10256",
        "--metrics-bind-address=127.0.0.1:10249",
        // Conntrack tunables are the machine's: left alone.
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
        "--v=2",
      ]);
      proxies.push(spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", log, log] }));
      fs.closeSync(log);
    }
    say(`tcnp (${o.mode} mode) from deploy/kubernetes/examples/${o.mode} with kubectl apply -k`);
    const overlay = writeOverlay(w, path.join(o.dir, "overlay"), o.mode);
    cp.kubectl(["apply", "--server-side", "-k", overlay]);
    await until(
      "both nodes Ready, tcnp-node Ready on each, no not-ready taint",
      async () => {
        const ns = JSON.parse(cp!.kubectl(["get", "nodes", "-o", "json"])) as {
          items: Array<{
            spec: { taints?: Array<{ key: string }> };
            status: { conditions: Array<{ type: string; status: string }> };
          }>;
        };
        const pods = JSON.parse(
          cp!.kubectl(["get", "pods", "-n", "tcnp-system", "-l", "app.kubernetes.io/name=tcnp-node", "-o", "json"]),
        ) as { items: Array<{ status: { conditions?: Array<{ type: string; status: string }> } }> };
        const ready = (c?: Array<{ type: string; status: string }>): boolean =>
          c?.some((x) => x.type === "Ready" && x.status === "True") ?? false;
        return ns.items.length === 2 &&
          ns.items.every(
            (n) => ready(n.status.conditions) && !(n.spec.taints ?? []).some((t) => t.key.startsWith("tcnp.io")),
          ) &&
          pods.items.length === 2 &&
          pods.items.every((p) => ready(p.status.conditions))
          ? true
          : undefined;
      },
      240_000,
      () => logsOf(o.dir, cp!, nodes),
    );
    say("cluster ready");
    return { mode: o.mode, w, cp, nodes, dir: o.dir, logs: () => logsOf(o.dir, cp!, nodes), stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms: number, logs: () => string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms / 1000} s\n${logs()}`);
    await sleep(1000);
  }
}

function logsOf(dir: string, cp: ControlPlane, nodes: KubeNode[]): string {
  const tail = (f: string, n = 3000): string => (fs.existsSync(f) ? fs.readFileSync(f, "utf8").slice(-n) : "");
  let pods = "";
  try {
    pods = `${cp.kubectl(["get", "pods", "-A", "-o", "wide"])}\n${cp.kubectl(["get", "events", "-A"]).slice(-3000)}`;
  } catch (e) {
    pods = String(e);
  }
  return [
    pods,
    ...nodes.flatMap((n) => [
      `--- ${n.name} kubelet`,
      n.log().slice(-3000),
      `--- ${n.name} kube-proxy`,
      tail(path.join(dir, n.name, "kube-proxy.log")),
      `--- ${n.name} tcnp agent`,
      tail(n.hostPath("/var/log/tcnp/agent.log")),
    ]),
  ].join("\n");
}

/** The shipped example of the mode, copied and filled in for the lab's cloud, network and router. */
function writeOverlay(w: World, o: string, mode: ClusterMode): string {
  fs.cpSync(path.join(repoRoot, "deploy", "kubernetes", "examples", mode), o, { recursive: true });
  const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string })
    .version;
  const conflist = JSON.parse(fs.readFileSync(path.join(o, "10-tcnp.conflist"), "utf8")) as {
    plugins: Array<{ ipam?: { neutronConf: Record<string, unknown>; pool: Record<string, unknown> } }>;
  };
  const ipam = conflist.plugins[0]!.ipam!;
  ipam.neutronConf["networks"] = [mode === "mix" ? MIX_NET : ENI_NET];
  // eni: the pods' ports get the VM port's security groups (the example names a placeholder), and
  // the lab's VMs have more hot-plug slots than the default maximum of 4 assumes.
  delete ipam.neutronConf["securityGroups"];
  if (mode === "eni") ipam.pool["maximum"] = 20;
  fs.writeFileSync(path.join(o, "10-tcnp.conflist"), JSON.stringify(conflist, null, 2));
  const clouds = [
    "clouds:",
    "  tcnp:",
    "    auth:",
    `      auth_url: ${w.authUrl}`,
    "      username: admin",
    "      password: secret",
    "      project_name: admin",
    "      user_domain_name: default",
    "      project_domain_name: default",
    "",
  ].join("\n");
  fs.writeFileSync(path.join(o, "node-clouds.yaml"), clouds);
  fs.writeFileSync(path.join(o, "controller-clouds.yaml"), clouds);
  const ctl = path.join(o, "controller.yaml");
  fs.writeFileSync(
    ctl,
    fs
      .readFileSync(ctl, "utf8")
      .replace(/routerId: .*/, `routerId: ${ROUTER}`)
      .replace(/networks:\n {2}- .*/, `networks:\n  - ${MIX_NET}\n  - ${ENI_NET}`),
  );
  const k = path.join(o, "kustomization.yaml");
  fs.writeFileSync(
    k,
    fs
      .readFileSync(k, "utf8")
      .replace("  - ../../base", `  - ${path.relative(o, path.join(repoRoot, "deploy", "kubernetes", "base"))}`)
      .replace("newName: registry.example/tcnp", "newName: localhost/tcnp")
      .replace(/newTag: .*/, `newTag: "${version}"`),
  );
  return o;
}

/** Whether the e2e binaries can be built or are built (Go present or cached). */
export function clusterSkipReason(): string | undefined {
  if (!fs.existsSync(kubeProxyBin) && spawnSync("go", ["version"]).status !== 0)
    return "needs kube-proxy, e2e.test and agnhost (scripts/k8s/build-e2e.sh, which needs golang-go)";
  try {
    execFileSync("which", ["umoci", "skopeo"], { stdio: "ignore" });
  } catch {
    return "needs umoci and skopeo";
  }
  return undefined;
}
