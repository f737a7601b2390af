// The kubelet's path: containerd's CRI plugin (Debian's containerd 1.6 + runc) starts pod sandboxes
// in a VM and calls tcnp through its own CNI library, with the seed configurations as written. The
// pod gets its Neutron address (mix: an extra fixed IP of the VM's port; eni: a port of its own),
// is reachable from its VM, and StopPodSandbox gives everything back.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { hostVethName } from "../../src/net/names.js";
import { buildPauseImage, importImage, startContainerd, type Containerd } from "../helpers/containerd.js";
import { e2eSkipReason, REFERENCE_CNI_DIR } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { ENI_NET, MIX_NET, World, type VmHandle } from "../helpers/world.js";

const skip =
  rootSkipReason(
    "iptables-restore",
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "busybox",
    "nsenter",
    "unshare",
  ) ?? e2eSkipReason();

describe("containerd CRI (the kubelet path) with the seed configurations", { skip: skip ?? false }, () => {
  let w: World;
  let vm: VmHandle;
  let ctd: Containerd | undefined;
  before(async () => {
    w = await World.start({ vms: 1, home: "mix" });
    vm = w.vms[0]!;
    w.install(vm, "10-tcnp.conf", w.mixConf());
    const dir = path.join(w.dir, "containerd");
    // containerd always sets up the pod's loopback with the reference plugin, from the same bin dir.
    fs.symlinkSync(path.join(REFERENCE_CNI_DIR, "loopback"), path.join(w.binDir, "loopback"));
    ctd = await startContainerd({
      netns: vm.nsName,
      dir,
      cniBinDir: w.binDir,
      cniConfDir: vm.confDir,
      env: {
        TCNP_STATE_DIR: vm.stateDir,
        TCNP_LOCK_DIR: path.join(vm.dir, "locks"),
        TCNP_LOG_FILE: path.join(vm.dir, "tcnp.log"),
      },
    });
    importImage(ctd, buildPauseImage(path.join(dir, "image")));
  });
  after(async () => {
    await ctd?.stop();
    await w?.stop();
  });

  const hostRoutes = (): string => execFileSync("ip", ["-n", vm.nsName, "route", "show"], { encoding: "utf8" });

  it("answers as containerd over CRI", async () => {
    const v = await ctd!.cri.version();
    assert.equal(v.runtime_name, "containerd");
    assert.equal(v.runtime_api_version, "v1");
  });

  it("mix: RunPodSandbox gives the pod an extra fixed IP of the VM's port; StopPodSandbox gives it back", async () => {
    const before = w.vmPort(vm, MIX_NET).ips;
    const t0 = performance.now();
    const id = await ctd!.cri.runPodSandbox("web-0", "default", "uid-web-0");
    process.stdout.write(
      `# RunPodSandbox (pause container + CNI ADD, mix) took ${(performance.now() - t0).toFixed(0)} ms\n`,
    );
    const st = await ctd!.cri.status(id);
    assert.equal(st.state, "SANDBOX_READY");
    const ip = st.network?.ip ?? "";
    assert.match(ip, /^10\.10\.10\.\d+$/, `${JSON.stringify(st)}\n${ctd!.log().slice(-1500)}`);
    assert.deepEqual(w.vmPort(vm, MIX_NET).ips, [...before, ip].sort());
    assert.match(
      hostRoutes(),
      new RegExp(`^${ip.replace(/\./g, "\\.")} dev ${hostVethName(id, "eth0")} `, "m"),
      "the host route to the pod, on the veth named from the sandbox ID",
    );
    assert.ok(await w.ping(vm.nsName, ip), "the VM reaches its pod");
    await ctd!.cri.stopPodSandbox(id);
    assert.deepEqual(w.vmPort(vm, MIX_NET).ips, before, "the address is back");
    assert.equal(hostRoutes().includes(`${ip} `), false);
    await ctd!.cri.removePodSandbox(id);
  });

  it("eni: RunPodSandbox gives the pod a Neutron port of its own; StopPodSandbox deletes it", async () => {
    w.install(vm, "10-cnichain.conflist", w.eniConf());
    const eniPorts = (): string[] =>
      Object.values(w.em.world.ports)
        .filter((p) => p.network_id === ENI_NET && p.tags.includes("tcnp-eni"))
        .map((p) => p.id);
    const id = await ctd!.cri.runPodSandbox("db-0", "default", "uid-db-0");
    const ip = (await ctd!.cri.status(id)).network?.ip ?? "";
    assert.match(ip, /^10\.10\.20\.\d+$/, ctd!.log().slice(-1500));
    assert.equal(eniPorts().length, 1);
    assert.equal(w.em.world.ports[eniPorts()[0]!]!.fixed_ips[0]!.ip_address, ip);
    assert.ok(await w.ping(vm.nsName, ip), "the VM reaches its pod (through veth0)");
    await ctd!.cri.stopPodSandbox(id);
    await w.em.settle();
    assert.deepEqual(eniPorts(), [], "the pod's port is deleted");
    await ctd!.cri.removePodSandbox(id);
  });
});
