// containerd (Debian's 1.6) as the kubelet's runtime in a test VM: it runs inside the VM's network
// namespace and in a private mount namespace whose /run and /var/lib are its own (so the pod
// netns files, shim sockets and the CNI result cache never reach the machine), with every other
// path under the test's directory. A small CRI client (gRPC, the runtime.v1 subset in
// cri/runtime.proto) starts and stops pod sandboxes as a kubelet does, which is where containerd
// calls CNI. The sandbox image is built here from Debian's busybox-static.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { repoRoot } from "./cni.js";

export const PAUSE_IMAGE = "localhost/tcnp-pause:latest";

export interface SandboxStatus {
  id: string;
  state: string;
  network?: { ip: string };
}

export interface Cri {
  version(): Promise<{ runtime_name: string; runtime_version: string; runtime_api_version: string }>;
  runPodSandbox(name: string, namespace: string, uid: string): Promise<string>;
  status(id: string): Promise<SandboxStatus>;
  stopPodSandbox(id: string): Promise<void>;
  removePodSandbox(id: string): Promise<void>;
  /** Every sandbox and container this containerd knows (a kubelet's too), by ID. */
  list(): Promise<{ sandboxes: string[]; containers: string[] }>;
  close(): void;
}

export interface Containerd {
  sock: string;
  pid: number;
  cri: Cri;
  log(): string;
  stop(): Promise<void>;
}

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** An OCI image archive whose only file is busybox, entrypoint `busybox sleep` (a pause container). */
export function buildPauseImage(dir: string): string {
  const root = path.join(dir, "rootfs");
  fs.mkdirSync(path.join(root, "bin"), { recursive: true });
  fs.copyFileSync("/bin/busybox", path.join(root, "bin", "busybox"));
  fs.chmodSync(path.join(root, "bin", "busybox"), 0o755);
  const layer = execFileSync("tar", ["-C", root, "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", "."], {
    maxBuffer: 64 << 20,
  });
  const oci = path.join(dir, "oci");
  const blobs = path.join(oci, "blobs", "sha256");
  fs.mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer): { digest: string; size: number } => {
    const h = sha(b);
    fs.writeFileSync(path.join(blobs, h), b);
    return { digest: `sha256:${h}`, size: b.length };
  };
  const l = put(layer);
  const config = put(
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: { Entrypoint: ["/bin/busybox", "sleep", "86400"] },
        rootfs: { type: "layers", diff_ids: [l.digest] },
      }),
    ),
  );
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...l }],
      }),
    ),
  );
  fs.writeFileSync(path.join(oci, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  fs.writeFileSync(
    path.join(oci, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          annotations: { "io.containerd.image.name": PAUSE_IMAGE, "org.opencontainers.image.ref.name": "latest" },
        },
      ],
    }),
  );
  const archive = path.join(dir, "pause.oci.tar");
  execFileSync("tar", ["-C", oci, "-cf", archive, "."]);
  return archive;
}

function configToml(dir: string, cni: { binDir: string; confDir: string }, sandboxImage = PAUSE_IMAGE): string {
  return `version = 2
root = "${dir}/root"
state = "${dir}/state"

[grpc]
  address = "${dir}/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${sandboxImage}"
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "${dir}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${cni.binDir}"
    conf_dir = "${cni.confDir}"
    max_conf_num = 1
`;
}

function criClient(sock: string): Cri {
  const def = protoLoader.loadSync(path.join(repoRoot, "test", "helpers", "cri", "runtime.proto"), {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } };
  };
  const client = new pkg.runtime.v1.RuntimeService(`unix://${sock}`, grpc.credentials.createInsecure());
  const call = <T>(method: string, req: unknown): Promise<T> =>
    new Promise((resolve, reject) => {
      (
        client[method] as (
          r: unknown,
          m: grpc.Metadata,
          o: grpc.CallOptions,
          cb: (e: grpc.ServiceError | null, r: T) => void,
        ) => void
      ).call(client, req, new grpc.Metadata(), { deadline: Date.now() + 120_000 }, (e, r) =>
        e === null ? resolve(r) : reject(e),
      );
    });
  return {
    version: () => call("Version", { version: "v1" }),
    async runPodSandbox(name, namespace, uid) {
      const r = await call<{ pod_sandbox_id: string }>("RunPodSandbox", {
        config: {
          metadata: { name, uid, namespace, attempt: 0 },
          hostname: name,
          log_directory: "",
          linux: { security_context: { namespace_options: { network: "POD", pid: "CONTAINER", ipc: "POD" } } },
          labels: {},
          annotations: {},
        },
        runtime_handler: "",
      });
      return r.pod_sandbox_id;
    },
    async status(id) {
      return (await call<{ status: SandboxStatus }>("PodSandboxStatus", { pod_sandbox_id: id, verbose: false })).status;
    },
    async stopPodSandbox(id) {
      await call("StopPodSandbox", { pod_sandbox_id: id });
    },
    async removePodSandbox(id) {
      await call("RemovePodSandbox", { pod_sandbox_id: id });
    },
    async list() {
      const s = await call<{ items: Array<{ id: string }> }>("ListPodSandbox", {});
      const c = await call<{ containers: Array<{ id: string }> }>("ListContainers", {});
      return { sandboxes: s.items.map((x) => x.id), containers: c.containers.map((x) => x.id) };
    },
    close: () => client.close(),
  };
}

/** Kill what is left in the cgroups of these sandboxes and remove the cgroups (a test that failed midway). */
function removeSandboxCgroups(ids: string[]): void {
  const roots = fs
    .readdirSync("/sys/fs/cgroup")
    .map((c) => path.join("/sys/fs/cgroup", c))
    .filter((d) => fs.statSync(d).isDirectory());
  const dirs = [...roots, "/sys/fs/cgroup"]
    .flatMap((r) => ids.map((id) => path.join(r, "k8s.io", id)))
    .filter((d) => fs.existsSync(d));
  for (const d of dirs) {
    for (const pid of fs
      .readFileSync(path.join(d, "cgroup.procs"), "utf8")
      .split("\n")
      .filter((x) => x !== "")) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  for (const d of dirs) {
    for (let i = 0; i < 20; i++) {
      try {
        fs.rmdirSync(d);
        break;
      } catch {
        execFileSync("sleep", ["0.05"]);
      }
    }
  }
  // The parent containerd made, if nothing else lives there.
  for (const r of [...roots, "/sys/fs/cgroup"]) {
    try {
      fs.rmdirSync(path.join(r, "k8s.io"));
    } catch {
      // not there, or not empty
    }
  }
}

/** Processes whose command line mentions `marker` (the shims we caused to start), by PID. */
function processesWith(marker: string): number[] {
  const out: number[] = [];
  for (const p of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes(marker)) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

/** `env` reaches the CNI plugins: libcni starts them with the runtime's environment plus the CNI_* variables. */
export async function startContainerd(o: {
  netns: string;
  dir: string;
  cniBinDir: string;
  cniConfDir: string;
  env?: Record<string, string>;
  /**
   * A whole node for a kubelet: besides /run and /var/lib, the namespace gets its own /etc (an
   * overlay on the machine's), /opt and /var/log, and the kernel tunables a kubelet sets (vm.*,
   * kernel.panic*, kernel.keys.*) are files of its own, so nothing a kubelet or a DaemonSet's
   * hostPath writes reaches the machine. Mounts are shared inside the namespace (a pod's
   * HostToContainer mount sees the netns files made later). `loopbackPlugin` is copied to
   * /opt/cni/bin, as a node's OS package would put it there.
   */
  node?: { loopbackPlugin: string };
  /** The pod sandbox image (default PAUSE_IMAGE, which buildPauseImage makes). */
  sandboxImage?: string;
}): Promise<Containerd> {
  fs.mkdirSync(o.dir, { recursive: true });
  const cfg = path.join(o.dir, "config.toml");
  fs.writeFileSync(cfg, configToml(o.dir, { binDir: o.cniBinDir, confDir: o.cniConfDir }, o.sandboxImage));
  const sock = path.join(o.dir, "containerd.sock");
  const logFile = path.join(o.dir, "containerd.log");
  const fd = fs.openSync(logFile, "a");
  // /run and /var/lib private to containerd (pod netns files, shim sockets, libcni's cache).
  const tunables = ["vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops"]
    .concat(["kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"])
    .map(
      (t) =>
        `cp /proc/sys/${t} "$T/${t.replace(/\//g, "_")}" && mount --bind "$T/${t.replace(/\//g, "_")}" /proc/sys/${t}`,
    );
  const nodeMounts =
    o.node === undefined
      ? []
      : [
          'T="$2" && mkdir -p "$T" && mount -t tmpfs tcnp-node "$T" && mkdir "$T/etc" "$T/work"',
          'mount -t overlay tcnp-etc -o lowerdir=/etc,upperdir="$T/etc",workdir="$T/work" /etc',
          "mount -t tmpfs tcnp-opt /opt && mkdir -p /opt/cni/bin /etc/cni/net.d",
          `cp "$3" /opt/cni/bin/loopback`,
          "mount -t tmpfs tcnp-log /var/log",
          ...tunables,
          "mount --make-rshared /",
        ];
  const script = [
    "set -e",
    "mount -t tmpfs tcnp-run /run && mkdir -p /run/netns",
    "mount -t tmpfs tcnp-varlib /var/lib && mkdir -p /var/lib/cni",
    ...nodeMounts,
    'exec containerd --config "$1"',
  ].join("\n");
  const child: ChildProcess = spawn(
    "nsenter",
    [
      `--net=/var/run/netns/${o.netns}`,
      "unshare",
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      script,
      "sh",
      cfg,
      path.join(o.dir, "node"),
      o.node?.loopbackPlugin ?? "",
    ],
    { stdio: ["ignore", fd, fd], env: { PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...o.env } },
  );
  fs.closeSync(fd);
  const end = Date.now() + 20_000;
  while (!fs.existsSync(sock)) {
    if (child.exitCode !== null || Date.now() > end)
      throw new Error(`containerd did not start: ${fs.readFileSync(logFile, "utf8").slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const cri = criClient(sock);
  const sandboxes = new Set<string>();
  const run = cri.runPodSandbox.bind(cri);
  cri.runPodSandbox = async (...a) => {
    const id = await run(...a);
    sandboxes.add(id);
    return id;
  };
  return {
    sock,
    pid: child.pid!,
    cri,
    log: () => fs.readFileSync(logFile, "utf8"),
    async stop() {
      // Sandboxes a failed test (or a kubelet) left: stopped and removed as the kubelet would, then
      // whatever remains killed.
      const all = await cri.list().catch(() => ({ sandboxes: [], containers: [] }));
      for (const id of all.sandboxes) sandboxes.add(id);
      for (const id of sandboxes) {
        await cri.stopPodSandbox(id).catch(() => {});
        await cri.removePodSandbox(id).catch(() => {});
      }
      cri.close();
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      for (const pid of processesWith(sock)) process.kill(pid, "SIGKILL");
      removeSandboxCgroups([...sandboxes, ...all.containers]);
    },
  };
}

/** Import an image archive into containerd's k8s.io namespace. */
export function importImage(c: Containerd, archive: string): void {
  execFileSync("ctr", ["-a", c.sock, "-n", "k8s.io", "image", "import", "--snapshotter", "native", archive], {
    stdio: "pipe",
  });
}
