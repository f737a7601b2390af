// Every supported spec version through a real CNI caller: for 0.3.0–1.0.0 libcni runs a chain of
// our veth-route and the reference `tuning` plugin (so libcni parses our result and hands it on as
// prevResult); for 1.1.0, which Debian's libcni (1.1.2) predates, cnicaller's raw 1.1.0 path runs
// ADD, CHECK, STATUS, GC and DEL.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { compareVersions } from "../../src/cni/version.js";
import { e2eSkipReason } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { MIX_NET, World } from "../helpers/world.js";

const skip = rootSkipReason("iptables-restore") ?? e2eSkipReason();

describe("spec versions through libcni", { skip: skip ?? false }, () => {
  let w: World;
  before(async () => {
    w = await World.start({ vms: 1, home: "mix" });
  });
  after(async () => w?.stop());

  for (const v of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
    it(`round-trips ADD${compareVersions(v, "0.4.0") >= 0 ? "/CHECK" : ""}/DEL at ${v}`, async () => {
      const vm = w.vms[0]!;
      const plugin = { ...w.mixConf() };
      delete plugin["name"];
      delete plugin["cniVersion"];
      const chained = v !== "1.1.0";
      const plugins = chained
        ? [plugin, { type: "tuning", sysctl: { "net.ipv4.conf.eth0.arp_notify": "1" } }]
        : [plugin];
      w.install(vm, "10-chain.conflist", { cniVersion: v, name: "chain", plugins });
      const pod = await w.newPod("v");
      const before = w.vmPort(vm, MIX_NET).ips;
      const add = await w.cni(vm, "add", pod, { net: "chain" });
      assert.equal(add.status, 0, add.stderr);
      const r = add.json!;
      assert.equal(r["cniVersion"], v);
      const ips = r["ips"] as Array<Record<string, unknown>>;
      assert.equal("version" in ips[0]!, compareVersions(v, "1.0.0") < 0, "ips[].version only before 1.0.0");
      assert.deepEqual((r["interfaces"] as Array<{ name: string }>).map((i) => i.name).length, 2);
      if (chained)
        assert.equal(
          w.kernel.readSysctl(pod.path, "net.ipv4.conf.eth0.arp_notify"),
          "1",
          "tuning got our result as prevResult and applied",
        );
      if (compareVersions(v, "0.4.0") >= 0) {
        const check = await w.cni(vm, "check", pod, { net: "chain" });
        assert.equal(check.status, 0, check.stderr);
      }
      if (v === "1.1.0") {
        assert.equal((await w.cni(vm, "status", pod, { net: "chain" })).status, 0);
        const gcKeep = await w.cni(vm, "gc", pod, { net: "chain", env: { VALID_ATTACHMENTS: `${pod.id}/eth0` } });
        assert.equal(gcKeep.status, 0, gcKeep.stderr);
        assert.equal(w.vmPort(vm, MIX_NET).ips.length, before.length + 1, "GC keeps valid attachments");
      }
      const del = await w.cni(vm, "del", pod, { net: "chain" });
      assert.equal(del.status, 0, del.stderr);
      assert.deepEqual(w.vmPort(vm, MIX_NET).ips, before);
    });
  }

  it("GC (1.1.0) releases every allocation missing from cni.dev/valid-attachments", async () => {
    const vm = w.vms[0]!;
    w.install(vm, "10-chain.conflist", {
      cniVersion: "1.1.0",
      name: "chain",
      plugins: [
        (() => {
          const p = { ...w.mixConf() };
          delete p["name"];
          delete p["cniVersion"];
          return p;
        })(),
      ],
    });
    const before = w.vmPort(vm, MIX_NET).ips;
    const pods = [await w.newPod("g"), await w.newPod("g"), await w.newPod("g")];
    for (const p of pods) assert.equal((await w.cni(vm, "add", p, { net: "chain" })).status, 0);
    // The runtime lost two containers without DEL (their namespaces are gone too).
    await w.removePodNetns(pods[1]!.name);
    await w.removePodNetns(pods[2]!.name);
    const gc = await w.cni(vm, "gc", pods[0]!, { net: "chain", env: { VALID_ATTACHMENTS: `${pods[0]!.id}/eth0` } });
    assert.equal(gc.status, 0, gc.stderr);
    assert.equal(w.vmPort(vm, MIX_NET).ips.length, before.length + 1, "only the valid attachment keeps its address");
    const left = (await w.kernel.listLinks(vm.ns)).filter((l) => l.name.startsWith("veth"));
    assert.equal(left.length, 1, "the gone pods' host veths are gone");
    assert.equal((await w.cni(vm, "del", pods[0]!, { net: "chain" })).status, 0);
    assert.deepEqual(w.vmPort(vm, MIX_NET).ips, before);
  });
});
