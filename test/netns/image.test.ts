// The OCI image: scripts/image.sh builds it without a daemon, containerd imports it, and its
// entrypoint, run by containerd as the DaemonSet's init container runs it, installs the binaries
// and a 0600 network configuration into a node root, the clouds.yaml beside it root-only, no
// password in anything it writes.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as net from "node:net";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { importImage, startContainerd, type Containerd } from "../helpers/containerd.js";
import { repoRoot } from "../helpers/cni.js";
import { addNetns, deleteNetns } from "../helpers/namespaces.js";
import { rootSkipReason } from "../helpers/root.js";

const skip = rootSkipReason("containerd", "containerd-shim-runc-v2", "runc", "ctr", "umoci", "skopeo", "nsenter");
const PASSWORD = "image-test-secret-5f1c";

describe("the tcnp image (built without a daemon, imported by containerd)", { skip: skip ?? false }, () => {
  let dir: string;
  let ns: { name: string } | undefined;
  let ctd: Containerd | undefined;
  let build = "";
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-image-"));
    const r = spawnSync("bash", [path.join(repoRoot, "scripts", "image.sh"), path.join(dir, "out")], {
      cwd: repoRoot,
      encoding: "utf8",
    });
    build = r.stdout + r.stderr;
    assert.equal(r.status, 0, build);
    ns = addNetns("img");
    ctd = await startContainerd({
      netns: ns.name,
      dir: path.join(dir, "containerd"),
      cniBinDir: path.join(dir, "cni-bin"),
      cniConfDir: path.join(dir, "cni-conf"),
    });
  });
  after(async () => {
    await ctd?.stop();
    if (ns !== undefined) deleteNetns(ns.name);
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("prints its size and contents, and holds only what the executable needs", () => {
    assert.match(build, /image localhost\/tcnp:[\d.]+: .*tcnp-image\.tar \(\d+M/);
    for (const f of ["./usr/local/bin/tcnp ", "./usr/local/bin/tcnp-cni ", "./usr/sbin/xtables-nft-multi "])
      assert.ok(build.includes(f), `the image lists ${f}`);
    // No shell, no package manager, no coreutils: a minimal root filesystem.
    const root = path.join(dir, "out", "rootfs");
    for (const f of ["bin/sh", "usr/bin/bash", "usr/bin/apt", "usr/bin/ls"])
      assert.ok(!fs.existsSync(path.join(root, f)), `no ${f} in the image`);
  });

  it("containerd imports it; its entrypoint installs the binaries and a 0600 configuration into a node root", () => {
    const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string })
      .version;
    const ref = `localhost/tcnp:${version}`;
    importImage(ctd!, path.join(dir, "out", "tcnp-image.tar"));
    const images = execFileSync("ctr", ["-a", ctd!.sock, "-n", "k8s.io", "images", "ls", "-q"], { encoding: "utf8" });
    assert.ok(images.split("\n").includes(ref), `containerd lists ${ref}: ${images}`);

    // What the manifests mount: the node's root at /host, the ConfigMap and the Secret.
    const host = path.join(dir, "node");
    const cfg = path.join(dir, "config");
    const secret = path.join(dir, "secret");
    for (const d of [host, cfg, secret]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(
      path.join(cfg, "10-tcnp.conflist"),
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "tcnp",
        plugins: [
          {
            type: "veth-route",
            ipam: {
              type: "tcnp-ipam",
              openstackConf: { cloud: "tcnp", cloudsYaml: "/etc/tcnp/clouds.yaml" },
              neutronConf: { networks: ["8f7b2e34-4c69-4d0f-9d5e-2f6a1c3b7e10"] },
            },
          },
        ],
      }),
    );
    fs.writeFileSync(
      path.join(secret, "clouds.yaml"),
      `clouds:\n  tcnp:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: pods\n      password: ${PASSWORD}\n`,
    );
    const mount = (src: string, dst: string, mode: "ro" | "rw"): string[] => [
      "--mount",
      `type=bind,src=${src},dst=${dst},options=rbind:${mode}`,
    ];
    // ctr's stdio fifos live under /run: it runs in containerd's own mount namespace (see the helper).
    const run = spawnSync(
      "nsenter",
      [
        "-t",
        String(ctd!.pid),
        "-m",
        "ctr",
        "-a",
        ctd!.sock,
        "-n",
        "k8s.io",
        "run",
        "--rm",
        "--snapshotter",
        "native",
        ...mount(host, "/host", "rw"),
        ...mount(cfg, "/etc/tcnp-config", "ro"),
        ...mount(secret, "/etc/tcnp-secret", "ro"),
        ref,
        "tcnp-install",
        "/usr/local/bin/tcnp",
        "install",
        "--bin-dir",
        "/host/opt/cni/bin",
        "--secret",
        "/etc/tcnp-secret/clouds.yaml",
        "--secret-dir",
        "/host/etc/tcnp",
        "--conf",
        "/etc/tcnp-config/10-tcnp.conflist",
        "--conf-dir",
        "/host/etc/cni/net.d",
      ],
      { encoding: "utf8", timeout: 120_000 },
    );
    const out = run.stdout + run.stderr;
    assert.equal(run.status, 0, `${out}\n${ctd!.log().slice(-1500)}`);
    assert.ok(!out.includes(PASSWORD), "the install output has no password");

    const bin = path.join(host, "opt", "cni", "bin");
    assert.equal(fs.statSync(path.join(bin, "tcnp")).mode & 0o777, 0o755);
    assert.equal(fs.readlinkSync(path.join(bin, "veth-route")), "tcnp-cni", "plugin names run the forwarder");
    assert.equal(fs.readlinkSync(path.join(bin, "tcnp-ipam")), "tcnp-cni");
    // The installed executable runs on the node (outside the image).
    assert.match(execFileSync(path.join(bin, "tcnp"), ["version"], { encoding: "utf8" }), /^tcnp /);

    const conf = path.join(host, "etc", "cni", "net.d", "10-tcnp.conflist");
    assert.equal(fs.statSync(conf).mode & 0o777, 0o600);
    assert.ok(!fs.readFileSync(conf, "utf8").includes(PASSWORD));
    const clouds = path.join(host, "etc", "tcnp", "clouds.yaml");
    assert.equal(fs.statSync(clouds).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(clouds)).mode & 0o777, 0o700);
    // Nothing else the entrypoint wrote holds the password.
    const files = fs.readdirSync(host, { recursive: true, encoding: "utf8" }).map((f) => path.join(host, f));
    const leaks = files.filter(
      (f) => f !== clouds && fs.lstatSync(f).isFile() && fs.readFileSync(f).includes(Buffer.from(PASSWORD)),
    );
    assert.deepEqual(leaks, []);
  });

  it("scripts/push-image.sh pushes it to a registry in one command and prints the overlay's images lines", async () => {
    if (spawnSync("which", ["docker-registry"]).status !== 0)
      assert.fail("docker-registry is missing (scripts/setup-deps.sh installs it)");
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const cfg = path.join(dir, "registry.yml");
    fs.writeFileSync(
      cfg,
      [
        "version: 0.1",
        "storage:",
        `  filesystem: { rootdirectory: ${path.join(dir, "registry")} }`,
        "http:",
        `  addr: 127.0.0.1:${port}`,
        "",
      ].join("\n"),
    );
    const registry = spawn("docker-registry", ["serve", cfg], { stdio: "ignore" });
    try {
      const version = (JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string })
        .version;
      const dest = `127.0.0.1:${port}/tcnp/tcnp`;
      let push = spawnSync("bash", [path.join(repoRoot, "scripts", "push-image.sh"), dest, "--dest-tls-verify=false"], {
        cwd: repoRoot,
        encoding: "utf8",
        env: { ...process.env, TCNP_IMAGE_DIR: path.join(dir, "out") },
      });
      // The registry may still be starting.
      for (let i = 0; i < 20 && push.status !== 0; i++) {
        await new Promise((r) => setTimeout(r, 250));
        push = spawnSync("bash", [path.join(repoRoot, "scripts", "push-image.sh"), dest, "--dest-tls-verify=false"], {
          cwd: repoRoot,
          encoding: "utf8",
          env: { ...process.env, TCNP_IMAGE_DIR: path.join(dir, "out") },
        });
      }
      assert.equal(push.status, 0, push.stdout + push.stderr);
      const digest = /^pushed \S+ \((sha256:[0-9a-f]{64})\)$/m.exec(push.stdout)?.[1];
      assert.ok(digest !== undefined, push.stdout);
      assert.match(push.stdout, new RegExp(`newName: ${dest.replace(/\./g, "\\.")}\n    digest: ${digest}`));
      // What the registry holds: this version's image, under that digest, with tcnp as its entrypoint.
      const inspect = JSON.parse(
        execFileSync("skopeo", ["inspect", "--tls-verify=false", `docker://${dest}:${version}`], { encoding: "utf8" }),
      ) as { Digest: string; Labels: Record<string, string> };
      assert.equal(inspect.Digest, digest);
      assert.equal(inspect.Labels["org.opencontainers.image.version"], version);
      const config = JSON.parse(
        execFileSync("skopeo", ["inspect", "--config", "--tls-verify=false", `docker://${dest}@${digest}`], {
          encoding: "utf8",
        }),
      ) as { config: { Entrypoint: string[] } };
      assert.deepEqual(config.config.Entrypoint, ["/usr/local/bin/tcnp"]);
    } finally {
      registry.kill();
    }
  });
});
