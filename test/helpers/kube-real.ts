// A real Kubernetes control plane for tests: Debian's etcd and kube-apiserver (+ optionally
// kube-controller-manager) 1.20.2 built by scripts/k8s/build.sh into $TCNP_K8S_DIR, started here on
// loopback ports with a throwaway PKI, stopped (by PID) and removed afterwards. The API double
// (kube-double.ts) stays for fault injection; this is what keeps it honest.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { skipUnlessRequired } from "./root.js";

export const K8S_DIR = process.env["TCNP_K8S_DIR"] ?? "/var/cache/tcnp/k8s";
const bin = (n: string): string => path.join(K8S_DIR, "bin", n);
const deb = (n: string): string => path.join(K8S_DIR, "debs", "root", "usr", "bin", n);

/** Why the control plane cannot run here (scripts/k8s/build.sh not run), else undefined. */
export function controlPlaneSkipReason(): string | undefined {
  for (const f of [bin("kube-apiserver"), deb("etcd"), deb("kubectl")])
    if (!fs.existsSync(f)) return skipUnlessRequired(`needs ${f} (scripts/k8s/build.sh builds it)`);
  if (spawnOk("openssl", ["version"]) === false) return skipUnlessRequired("needs openssl");
  return undefined;
}

function spawnOk(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

export interface ControlPlane {
  url: string;
  caFile: string;
  dir: string;
  /** kubectl as the cluster admin; throws with its output on failure. */
  kubectl(args: string[], input?: string): string;
  /**
   * kubectl without blocking this process: what a process that also serves (the embedded cloud of
   * a lab cluster) must use for a command that waits.
   */
  kubectlAsync(args: string[], input?: string): Promise<string>;
  /** An admin request to the API (JSON in, JSON out); rejects with the status and body. */
  api<T = unknown>(method: string, p: string, body?: unknown, contentType?: string): Promise<T>;
  /**
   * A kubelet's kubeconfig (client certificate system:node:<name> in system:nodes, as the Node
   * authorizer wants), written 0600; `server` when the kubelet reaches the API elsewhere.
   */
  nodeKubeconfig(name: string, server?: string): string;
  /** The cluster admin's kubeconfig (0600). */
  adminKubeconfig: string;
  /** A kubeconfig for a client certificate of this CN and groups (e.g. system:kube-proxy), 0600. */
  clientKubeconfig(cn: string, groups?: string[]): string;
  /** argv that runs a command where the control plane runs (its namespace, if any). */
  exec(argv: string[]): string[];
  /** A ServiceAccount token from the TokenRequest API, written 0600 to a file; returns the file. */
  serviceAccountToken(namespace: string, name: string): Promise<string>;
  log(name: string): string;
  stop(): Promise<void>;
}

export async function startControlPlane(
  opts: {
    controllerManager?: boolean;
    scheduler?: boolean;
    /**
     * Run every process inside this network namespace (a lab VM's, so kubelets and the API reach
     * each other over the lab's network): the API serves on `address`:6443 there and keeps the
     * `kubernetes` Service's endpoint; kubectl and requests run in it too.
     */
    netns?: { name: string; address: string };
  } = {},
): Promise<ControlPlane> {
  const inNs = (argv: string[]): string[] =>
    opts.netns === undefined ? argv : ["ip", "netns", "exec", opts.netns.name, ...argv];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-k8s-"));
  const pki = path.join(dir, "pki");
  fs.mkdirSync(pki, { mode: 0o700 });
  const ssl = (args: string[]): void => void execFileSync("openssl", args, { cwd: pki, stdio: "pipe" });
  ssl(
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2"]
      .concat(["-subj", "/CN=tcnp-test-ca", "-addext", "basicConstraints=critical,CA:TRUE"])
      .concat(["-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"]),
  );
  const cert = (name: string, subj: string, ext: string): void => {
    fs.writeFileSync(path.join(pki, `${name}.ext`), ext);
    ssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj]);
    ssl(
      [
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
      ].concat(["-sha256", "-extfile", `${name}.ext`, "-out", `${name}.crt`]),
    );
  };
  const server = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n";
  cert(
    "serving",
    "/CN=kube-apiserver",
    `${server}extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost${
      opts.netns === undefined
        ? ""
        : `,IP:${opts.netns.address},IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local`
    }\n`,
  );
  cert("admin", "/CN=tcnp-test-admin/O=system:masters", `${server}extendedKeyUsage=clientAuth\n`);
  // The API's client certificate for the kubelets (exec, logs, port-forward).
  cert(
    "kubelet-client",
    "/CN=kube-apiserver-kubelet-client/O=system:masters",
    `${server}extendedKeyUsage=clientAuth\n`,
  );
  cert("kcm", "/CN=system:kube-controller-manager", `${server}extendedKeyUsage=clientAuth\n`);
  cert("scheduler", "/CN=system:kube-scheduler", `${server}extendedKeyUsage=clientAuth\n`);
  ssl(["genrsa", "-out", "sa.key", "2048"]);
  ssl(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);

  const [etcdPort, peerPort, apiPort, kcmPort, schedPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const procs: Array<{ name: string; child: ChildProcess }> = [];
  const logOf = (n: string): string => path.join(dir, `${n}.log`);
  const start = (name: string, file: string, args: string[]): ChildProcess => {
    const fd = fs.openSync(logOf(name), "a");
    const argv = inNs([file, ...args]);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    procs.push({ name, child });
    return child;
  };
  const stop = async (): Promise<void> => {
    for (const { child } of procs.reverse()) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(t);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const p = (n: string): string => path.join(pki, n);
  try {
    start("etcd", deb("etcd"), [
      "--name=tcnp-test",
      `--data-dir=${path.join(dir, "etcd")}`,
      `--listen-client-urls=https://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=https://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=tcnp-test=http://127.0.0.1:${peerPort}`,
      `--cert-file=${p("serving.crt")}`,
      `--key-file=${p("serving.key")}`,
      "--client-cert-auth",
      `--trusted-ca-file=${p("ca.crt")}`,
      "--log-level=warn",
      "--logger=zap",
    ]);
    const url = opts.netns === undefined ? `https://127.0.0.1:${apiPort}` : `https://${opts.netns.address}:6443`;
    start("kube-apiserver", bin("kube-apiserver"), [
      `--advertise-address=${opts.netns?.address ?? "127.0.0.1"}`,
      `--bind-address=${opts.netns === undefined ? "127.0.0.1" : "0.0.0.0"}`,
      `--secure-port=${opts.netns === undefined ? apiPort : 6443}`,
      "--insecure-port=0",
      `--etcd-servers=https://127.0.0.1:${etcdPort}`,
      `--etcd-cafile=${p("ca.crt")}`,
      `--etcd-certfile=${p("serving.crt")}`,
      `--etcd-keyfile=${p("serving.key")}`,
      `--tls-cert-file=${p("serving.crt")}`,
      `--tls-private-key-file=${p("serving.key")}`,
      `--client-ca-file=${p("ca.crt")}`,
      `--cert-dir=${path.join(dir, "apiserver-certs")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${p("sa.pub")}`,
      `--service-account-signing-key-file=${p("sa.key")}`,
      "--service-cluster-ip-range=10.96.0.0/16",
      "--allow-privileged=true",
      "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction",
      // In a namespace of its own the API is a node's neighbour: its Service's endpoint is real.
      `--endpoint-reconciler-type=${opts.netns === undefined ? "none" : "lease"}`,
      // Kubelets are reached (exec, logs) at their node address: the lab has no DNS for node names.
      "--kubelet-preferred-address-types=InternalIP,Hostname",
      `--kubelet-client-certificate=${p("kubelet-client.crt")}`,
      `--kubelet-client-key=${p("kubelet-client.key")}`,
      "--profiling=false",
      "--v=1",
    ]);
    const kubeconfig = path.join(dir, "admin.kubeconfig");
    const b64 = (f: string): string => fs.readFileSync(p(f)).toString("base64");
    const kcfg = (user: string, certName: string, server = url): string =>
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: test",
        "  cluster:",
        `    server: ${server}`,
        `    certificate-authority-data: ${b64("ca.crt")}`,
        "users:",
        `- name: ${user}`,
        "  user:",
        `    client-certificate-data: ${b64(`${certName}.crt`)}`,
        `    client-key-data: ${b64(`${certName}.key`)}`,
        "contexts:",
        "- name: test",
        `  context: {cluster: test, user: ${user}}`,
        "current-context: test",
        "",
      ].join("\n");
    fs.writeFileSync(kubeconfig, kcfg("admin", "admin"), { mode: 0o600 });
    const kubectl = (args: string[], input?: string): string => {
      try {
        const argv = inNs([deb("kubectl"), `--kubeconfig=${kubeconfig}`, ...args]);
        return execFileSync(argv[0]!, argv.slice(1), {
          encoding: "utf8",
          stdio: ["pipe", "pipe", "pipe"],
          ...(input === undefined ? {} : { input }),
        });
      } catch (e) {
        const x = e as { stdout?: string; stderr?: string };
        throw new Error(`kubectl ${args.join(" ")}: ${x.stdout ?? ""}${x.stderr ?? ""}`, { cause: e });
      }
    };
    const kubectlAsync = (args: string[], input?: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const argv = inNs([deb("kubectl"), `--kubeconfig=${kubeconfig}`, ...args]);
        const child = execFile(argv[0]!, argv.slice(1), { encoding: "utf8" }, (err, stdout, stderr) => {
          if (err === null) resolve(stdout);
          else reject(new Error(`kubectl ${args.join(" ")}: ${stdout}${stderr}`, { cause: err }));
        });
        child.stdin?.end(input ?? "");
      });
    const api = async <T>(method: string, pth: string, body?: unknown, contentType?: string): Promise<T> => {
      const args = ["-s", "-X", method, "--cacert", p("ca.crt"), "--cert", p("admin.crt"), "--key", p("admin.key")];
      args.push("-w", "\n%{http_code}", "-H", `content-type: ${contentType ?? "application/json"}`);
      if (body !== undefined) args.push("--data-binary", "@-");
      const argv = inNs(["curl", ...args, `${url}${pth}`]);
      const out = execFileSync(argv[0]!, argv.slice(1), {
        encoding: "utf8",
        input: body === undefined ? "" : JSON.stringify(body),
      });
      const i = out.lastIndexOf("\n");
      const code = Number(out.slice(i + 1));
      if (code < 200 || code >= 300) throw new Error(`${method} ${pth}: ${code} ${out.slice(0, i).slice(0, 300)}`);
      const text = out.slice(0, i);
      try {
        return JSON.parse(text || "{}") as T;
      } catch {
        return text as T; // /readyz, /healthz: plain text
      }
    };
    // Ready: /readyz answers ok (etcd up, the bootstrap RBAC roles in place).
    const end = Date.now() + 120_000;
    for (;;) {
      const r = await api<unknown>("GET", "/readyz").then(
        () => true,
        () => false,
      );
      if (r) break;
      for (const { name, child } of procs)
        if (child.exitCode !== null)
          throw new Error(`${name} exited: ${fs.readFileSync(logOf(name), "utf8").slice(-2000)}`);
      if (Date.now() > end)
        throw new Error(`kube-apiserver not ready: ${fs.readFileSync(logOf("kube-apiserver"), "utf8").slice(-2000)}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    // A component of the control plane with its client certificate, on a loopback port.
    const component = (name: string, cert: string, port: number, extra: string[]): void => {
      const k = path.join(dir, `${cert}.kubeconfig`);
      fs.writeFileSync(k, kcfg(cert, cert), { mode: 0o600 });
      start(name, bin(name), [
        `--kubeconfig=${k}`,
        `--authentication-kubeconfig=${k}`,
        `--authorization-kubeconfig=${k}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${port}`,
        "--port=0",
        `--cert-dir=${path.join(dir, `${cert}-certs`)}`,
        "--leader-elect=false",
        ...extra,
        "--v=1",
      ]);
    };
    if (opts.controllerManager === true)
      component("kube-controller-manager", "kcm", kcmPort, [
        "--use-service-account-credentials=true",
        `--service-account-private-key-file=${p("sa.key")}`,
        `--root-ca-file=${p("ca.crt")}`,
        "--controllers=*",
      ]);
    if (opts.scheduler === true) component("kube-scheduler", "scheduler", schedPort, []);
    return {
      url,
      caFile: p("ca.crt"),
      dir,
      kubectl,
      kubectlAsync,
      api,
      adminKubeconfig: kubeconfig,
      clientKubeconfig(cn, groups = []) {
        const name = cn.replace(/[^a-z0-9-]/gi, "-");
        cert(name, `/CN=${cn}${groups.map((g) => `/O=${g}`).join("")}`, `${server}extendedKeyUsage=clientAuth\n`);
        const k = path.join(dir, `${name}.kubeconfig`);
        fs.writeFileSync(k, kcfg(cn, name), { mode: 0o600 });
        return k;
      },
      exec: inNs,
      nodeKubeconfig(name, srv) {
        cert(`node-${name}`, `/CN=system:node:${name}/O=system:nodes`, `${server}extendedKeyUsage=clientAuth\n`);
        const k = path.join(dir, `node-${name}.kubeconfig`);
        fs.writeFileSync(k, kcfg(`system:node:${name}`, `node-${name}`, srv), { mode: 0o600 });
        return k;
      },
      async serviceAccountToken(namespace, name) {
        const r = await api<{ status: { token: string } }>(
          "POST",
          `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
          { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } },
        );
        const f = path.join(dir, `${namespace}-${name}.token`);
        fs.writeFileSync(f, r.status.token, { mode: 0o600 });
        return f;
      },
      log: (n) => (fs.existsSync(logOf(n)) ? fs.readFileSync(logOf(n), "utf8") : ""),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
