// podman's CNI backend (Debian's podman 4.3 with network_backend = "cni"), as a runtime that
// loads conflists only: `podman run --network` in a VM gives the container a mix address on the
// VM's port, or an eni port of its own through the seed's chain (reachable from the VM), and
// `podman rm` gives it back. Its configuration, storage and
// state are private to the test (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { e2eSkipReason, REFERENCE_CNI_DIR } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { ENI_NET, execAsync, MIX_NET, World, type VmHandle } from "../helpers/world.js";

const skip = rootSkipReason("podman", "runc", "conmon", "busybox", "nsenter") ?? e2eSkipReason();

describe("podman's CNI backend (conflists only)", { skip: skip ?? false }, () => {
  let w: World;
  let vm: VmHandle;
  let dir: string;
  let env: Record<string, string>;
  const podman = (args: string[]) =>
    // nsenter, not `ip netns exec`: that remounts /sys, and runc then finds no cgroup mount.
    execAsync(["nsenter", `--net=${vm.ns}`, "podman", "--cgroup-manager=cgroupfs", ...args], env);

  before(async () => {
    w = await World.start({ vms: 1, home: "mix" });
    vm = w.vms[0]!;
    // podman reads conflists only: the mix configuration as a one-plugin list, at CNI 1.0.0.
    const { name: _n, cniVersion: _v, ...plugin } = w.mixConf();
    w.install(vm, "10-tcnp.conflist", { cniVersion: "1.0.0", name: "tcnp", plugins: [plugin] });
    // The seed's eni chain is a conflist already (host-device + veth-host).
    fs.writeFileSync(path.join(vm.confDir, "20-eni.conflist"), JSON.stringify({ ...w.eniConf(), name: "eni" }));
    dir = path.join(w.dir, "podman");
    // conmon runs `podman container cleanup` when a container exits, and that process (and the
    // plugins it calls) sees only conmon's environment: CONTAINERS_CONF and PATH, not the test's
    // TCNP_* variables. Without them its DEL would look in the machine's default state directory,
    // find no record and leave the address on the port.
    const vmEnv = w.env(vm);
    const conmonEnv = Object.entries(vmEnv)
      .filter(([k]) => k.startsWith("TCNP_"))
      .map(([k, v]) => `${k}=${v}`);
    fs.mkdirSync(path.join(dir, "rootfs", "bin"), { recursive: true });
    fs.writeFileSync(
      path.join(dir, "containers.conf"),
      [
        "[network]",
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${w.binDir}", "${REFERENCE_CNI_DIR}"]`,
        `network_config_dir = "${vm.confDir}"`,
        "[engine]",
        'cgroup_manager = "cgroupfs"',
        `conmon_env_vars = ${JSON.stringify([`PATH=${process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`, ...conmonEnv])}`,
        'events_logger = "file"',
        `events_logfile_path = "${path.join(dir, "events.log")}"`,
        'runtime = "runc"',
        `tmp_dir = "${path.join(dir, "tmp")}"`,
        "[containers]",
        // This machine refuses the rlimits podman sets by default (nofile, nproc): containers keep the
        // runtime's.
        "default_ulimits = []",
        "",
      ].join("\n"),
    );
    fs.writeFileSync(
      path.join(dir, "storage.conf"),
      `[storage]\ndriver = "vfs"\ngraphroot = "${path.join(dir, "root")}"\nrunroot = "${path.join(dir, "run")}"\n`,
    );
    env = {
      ...vmEnv,
      PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      CONTAINERS_CONF: path.join(dir, "containers.conf"),
      CONTAINERS_STORAGE_CONF: path.join(dir, "storage.conf"),
      CONTAINERS_REGISTRIES_CONF: path.join(dir, "registries.conf"),
    };
    fs.writeFileSync(path.join(dir, "registries.conf"), "unqualified-search-registries = []\n");
    // The image: busybox alone, imported from a root filesystem tarball (no registry).
    fs.copyFileSync("/bin/busybox", path.join(dir, "rootfs", "bin", "busybox"));
    const tar = path.join(dir, "rootfs.tar");
    execFileSync("tar", ["-C", path.join(dir, "rootfs"), "--owner=0", "--group=0", "-cf", tar, "."]);
    const imp = await podman(["import", "--change", 'ENTRYPOINT ["/bin/busybox"]', tar, "localhost/tcnp-busybox"]);
    assert.equal(imp.status, 0, `${imp.stdout}${imp.stderr}`);
  });
  after(async () => {
    if (env !== undefined) await podman(["rm", "-af", "-t", "0"]).catch(() => undefined);
    await w?.stop();
  });

  it("lists the tcnp network from the conflist", async () => {
    const r = await podman(["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^tcnp /m);
  });

  it("podman run puts the container on the VM's port (mix); podman rm gives the address back", async () => {
    const before = w.vmPort(vm, MIX_NET).ips;
    const run = await podman([
      "run",
      "-d",
      "--name",
      "web",
      "--network",
      "tcnp",
      "localhost/tcnp-busybox",
      "sleep",
      "300",
    ]);
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    const ins = await podman(["inspect", "web", "--format", "{{.NetworkSettings.Networks.tcnp.IPAddress}}"]);
    const ip = ins.stdout.trim();
    assert.match(ip, /^10\.10\.10\.\d+$/, `${ins.stdout}${ins.stderr}`);
    assert.deepEqual(w.vmPort(vm, MIX_NET).ips, [...before, ip].sort(), "an extra fixed IP of the VM's port");
    assert.ok(await w.ping(vm.nsName, ip), "the VM reaches the container");
    // The container sees its address on eth0.
    const addr = await podman(["exec", "web", "/bin/busybox", "ip", "-4", "addr", "show", "eth0"]);
    assert.match(addr.stdout, new RegExp(`inet ${ip.replace(/\./g, "\\.")}/`));

    const rm = await podman(["rm", "-f", "-t", "0", "web"]);
    assert.equal(rm.status, 0, `${rm.stdout}${rm.stderr}`);
    assert.deepEqual(w.vmPort(vm, MIX_NET).ips, before, "the address is given back (no cool-down in tests)");
  });

  it("a container that exits by itself gives its address back through conmon's cleanup", async () => {
    const before = w.vmPort(vm, MIX_NET).ips;
    const run = await podman(["run", "-d", "--name", "brief", "--network", "tcnp", "localhost/tcnp-busybox", "true"]);
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    // Nothing but conmon's `podman container cleanup` runs DEL here: wait for it.
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && w.vmPort(vm, MIX_NET).ips.length !== before.length)
      await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(w.vmPort(vm, MIX_NET).ips, before, "the exited container's address is given back");
    const rm = await podman(["rm", "brief"]);
    assert.equal(rm.status, 0, `${rm.stdout}${rm.stderr}`);
  });

  it("podman run on the eni chain gives the container a Neutron port of its own; podman rm deletes it", async () => {
    const eniPorts = (): string[] =>
      Object.values(w.em.world.ports)
        .filter((p) => p.network_id === ENI_NET && p.tags.includes("tcnp-eni"))
        .map((p) => p.id);
    const run = await podman([
      "run",
      "-d",
      "--name",
      "db",
      "--network",
      "eni",
      "localhost/tcnp-busybox",
      "sleep",
      "300",
    ]);
    assert.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    const ins = await podman(["inspect", "db", "--format", "{{.NetworkSettings.Networks.eni.IPAddress}}"]);
    const ip = ins.stdout.trim();
    assert.match(ip, /^10\.10\.20\.\d+$/, `${ins.stdout}${ins.stderr}`);
    assert.equal(eniPorts().length, 1);
    assert.equal(w.em.world.ports[eniPorts()[0]!]!.fixed_ips[0]!.ip_address, ip);
    assert.ok(await w.ping(vm.nsName, ip), "the VM reaches the container (through veth0)");
    const rm = await podman(["rm", "-f", "-t", "0", "db"]);
    assert.equal(rm.status, 0, `${rm.stdout}${rm.stderr}`);
    await w.em.settle();
    assert.deepEqual(eniPorts(), [], "the container's port is deleted");
  });
});
