// A Kubernetes node inside a lab VM: Debian's containerd and the kubelet 1.20.2 that
// scripts/k8s/build.sh builds, both in the VM's network namespace and in one private mount
// namespace of their own (containerd.ts `node`: its own /etc overlay, /opt, /run, /var/lib,
// /var/log and kernel tunables), so what the kubelet and the pods' hostPath volumes write stays
// there and vanishes with it. The kubelet registers a Node with the test's control plane through a
// relay of the API's loopback port into the VM, authenticated as system:node:<name>.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { importImage, PAUSE_IMAGE, startContainerd, type Containerd } from "./containerd.js";
import { K8S_DIR, type ControlPlane } from "./kube-real.js";
import { skipUnlessRequired } from "./root.js";

const kubeletBin = path.join(K8S_DIR, "bin", "kubelet");

/** Why a kubelet cannot run here, else undefined. */
export function kubeletSkipReason(): string | undefined {
  for (const c of ["kubelet", "kube-scheduler", "kube-controller-manager"])
    if (!fs.existsSync(path.join(K8S_DIR, "bin", c)))
      return skipUnlessRequired(`needs ${path.join(K8S_DIR, "bin", c)} (scripts/k8s/build.sh builds it)`);
  return undefined;
}

export interface KubeNode {
  name: string;
  containerd: Containerd;
  /** A path of the node's own file system (its mount namespace), as the machine sees it. */
  hostPath(p: string): string;
  /** argv that runs a command on the node (its network and mount namespaces). */
  exec(argv: string[]): string[];
  log(): string;
  stop(): Promise<void>;
}

export async function startKubeNode(o: {
  cp: ControlPlane;
  /** The VM's network namespace (a name under /var/run/netns). */
  netns: string;
  dir: string;
  name: string;
  ip: string;
  /** The API server's URL as seen from inside the VM. */
  server: string;
  loopbackPlugin: string;
  images: string[];
  /** The node's own /etc/resolv.conf (its resolver, for the pods on its network with dnsPolicy Default). */
  resolvConf?: string;
  /** The cluster DNS address the kubelet gives ClusterFirst pods (nothing need answer there). */
  clusterDns?: string;
  /** The pod sandbox image (default PAUSE_IMAGE); it must be among `images`. */
  pauseImage?: string;
  maxPods?: number;
}): Promise<KubeNode> {
  const ctd = await startContainerd({
    netns: o.netns,
    dir: path.join(o.dir, "containerd"),
    cniBinDir: "/opt/cni/bin",
    cniConfDir: "/etc/cni/net.d",
    node: { loopbackPlugin: o.loopbackPlugin },
    sandboxImage: o.pauseImage ?? PAUSE_IMAGE,
  });
  let kubelet: ChildProcess | undefined;
  const logFile = path.join(o.dir, "kubelet.log");
  const stop = async (): Promise<void> => {
    if (kubelet !== undefined && kubelet.exitCode === null && kubelet.signalCode === null) {
      const gone = new Promise((r) => kubelet!.once("exit", r));
      kubelet.kill("SIGTERM");
      const t = setTimeout(() => kubelet!.kill("SIGKILL"), 10_000);
      await gone;
      clearTimeout(t);
    }
    // The pods the kubelet left: stopped and removed through CRI, then containerd stopped.
    await ctd.stop();
  };
  try {
    if (o.resolvConf !== undefined)
      execFileSync("nsenter", ["-t", String(ctd.pid), "-m", "sh", "-c", "cat > /etc/resolv.conf"], {
        input: o.resolvConf,
      });
    for (const i of o.images) importImage(ctd, i);
    const kubeconfig = o.cp.nodeKubeconfig(o.name, o.server);
    const fd = fs.openSync(logFile, "a");
    kubelet = spawn(
      "nsenter",
      [
        "-t",
        String(ctd.pid),
        "-m",
        "-n",
        kubeletBin,
        `--kubeconfig=${kubeconfig}`,
        "--container-runtime=remote",
        `--container-runtime-endpoint=unix://${ctd.sock}`,
        `--containerd=${ctd.sock}`,
        "--root-dir=/var/lib/kubelet",
        "--cert-dir=/var/lib/kubelet/pki",
        "--volume-plugin-dir=/var/lib/kubelet/volume-plugins",
        `--hostname-override=${o.name}`,
        `--node-ip=${o.ip}`,
        `--address=${o.ip}`,
        "--healthz-bind-address=127.0.0.1",
        "--read-only-port=0",
        "--anonymous-auth=false",
        `--client-ca-file=${o.cp.caFile}`,
        "--authorization-mode=Webhook",
        "--fail-swap-on=false",
        "--cgroup-driver=cgroupfs",
        // No kubepods cgroup tree on the machine: the pods' cgroups are containerd's (k8s.io/<id>).
        "--cgroups-per-qos=false",
        "--enforce-node-allocatable=",
        // The VM's namespace has no kube-proxy; the machine's iptables are not the kubelet's.
        "--make-iptables-util-chains=false",
        `--pod-infra-container-image=${o.pauseImage ?? PAUSE_IMAGE}`,
        // Images were imported (there is no registry): never collect them.
        "--image-gc-high-threshold=100",
        "--image-gc-low-threshold=99",
        "--eviction-hard=memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
        "--sync-frequency=5s",
        `--max-pods=${o.maxPods ?? 20}`,
        // The default (5 requests/s, burst 10) queues pod status updates: 30 pods at once wait ~6 s
        // for their Ready to reach the API, whatever the network did.
        "--kube-api-qps=50",
        "--kube-api-burst=100",
        ...(o.clusterDns === undefined ? [] : [`--cluster-dns=${o.clusterDns}`, "--cluster-domain=cluster.local"]),
        "--v=2",
      ],
      { stdio: ["ignore", fd, fd] },
    );
    fs.closeSync(fd);
    const log = (): string => fs.readFileSync(logFile, "utf8");
    const end = Date.now() + 90_000;
    for (;;) {
      const node = await o.cp.api("GET", `/api/v1/nodes/${o.name}`).catch(() => undefined);
      if (node !== undefined) break;
      if (kubelet.exitCode !== null) throw new Error(`kubelet exited: ${log().slice(-3000)}`);
      if (Date.now() > end) throw new Error(`the kubelet did not register ${o.name}: ${log().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    return {
      name: o.name,
      containerd: ctd,
      hostPath: (p) => path.join(`/proc/${ctd.pid}/root`, p),
      exec: (argv) => ["nsenter", "-t", String(ctd.pid), "-m", "-n", ...argv],
      log,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
