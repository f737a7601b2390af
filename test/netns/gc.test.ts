// `tcnp gc` on the real kernel: a pod the runtime forgot (no cache entry, netns gone, no DEL) gets its
// Neutron address, host veth and routes released; pods the runtime knows and young allocations stay.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { hostVethName } from "../../src/net/names.js";
import { distBinary, e2eSkipReason } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { ENI_NET, MIX_NET, World, type VmHandle } from "../helpers/world.js";

const skip = rootSkipReason("iptables-restore") ?? e2eSkipReason();

// Asynchronous: the cloud it talks to is served from this process.
function gc(w: World, vm: VmHandle, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "ip",
      ["netns", "exec", vm.nsName, distBinary, "gc", ...args],
      { encoding: "utf8", env: { ...w.env(vm), NETCONFPATH: vm.confDir }, timeout: 120_000 },
      (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
    );
  });
}

/** The runtime forgets a pod: its cache entry goes, then its netns, and no DEL is ever sent. */
async function forget(w: World, vm: VmHandle, pod: { name: string; id: string }): Promise<void> {
  const dir = path.join(vm.cacheDir, "results");
  for (const f of fs.readdirSync(dir).filter((x) => x.includes(pod.id))) fs.rmSync(path.join(dir, f));
  await w.removePodNetns(pod.name);
}

describe("tcnp gc (runtimes without CNI GC)", { skip: skip ?? false }, () => {
  let w: World;
  before(async () => {
    w = await World.start({ vms: 1, home: "mix" });
  });
  after(async () => w?.stop());

  it("mix: releases only the forgotten pod's address and host state, and only once it is older than --min-age", async () => {
    const vm = w.vms[0]!;
    w.install(vm, "10-tcnp.conf", w.mixConf());
    const pods = [await w.newPod(), await w.newPod(), await w.newPod()];
    const ips: string[] = [];
    for (const p of pods) {
      const r = await w.cni(vm, "add", p);
      assert.equal(r.status, 0, r.stderr);
      ips.push(String((r.json!["ips"] as Array<{ address: string }>)[0]!.address).split("/")[0]!);
    }
    await forget(w, vm, pods[1]!);
    const veth = hostVethName(pods[1]!.id, "eth0");

    const dry = await gc(w, vm, ["--dry-run", "--min-age", "0"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      new RegExp(`1 allocation\\(s\\) to release\\n  ${pods[1]!.id}/eth0 mix ${ips[1]!.replace(/\./g, "\\.")}`),
    );
    assert.ok(w.vmPort(vm, MIX_NET).ips.includes(ips[1]!), "a dry run releases nothing");
    const dryJson = await gc(w, vm, ["--dry-run", "--min-age", "0", "--json"]);
    assert.equal(dryJson.code, 0, dryJson.stderr);
    const [entry] = JSON.parse(dryJson.stdout) as Array<{ valid: string[]; toRelease: string[]; released: string[] }>;
    assert.deepEqual(entry!.valid.sort(), [`${pods[0]!.id}/eth0`, `${pods[2]!.id}/eth0`].sort());
    assert.equal(entry!.toRelease.length, 1);
    assert.match(entry!.toRelease[0]!, new RegExp(`^${pods[1]!.id}/eth0 mix ${ips[1]!.replace(/\./g, "\\.")} `));
    assert.deepEqual(entry!.released, []);

    const young = await gc(w, vm, []);
    assert.equal(young.code, 0, young.stderr);
    assert.match(young.stdout, /0 allocation\(s\) to release/);
    assert.ok(w.vmPort(vm, MIX_NET).ips.includes(ips[1]!), "an allocation younger than --min-age is kept");

    // Nothing is released while the runtime's cache cannot be trusted.
    const garbage = path.join(vm.cacheDir, "results", "cni0-half-written");
    fs.writeFileSync(garbage, '{"kind":"cniCacheV1",');
    const unsure = await gc(w, vm, ["--min-age", "0"]);
    assert.equal(unsure.code, 1);
    assert.match(unsure.stderr, /cannot read 1 CNI cache entry .*cni0-half-written.*nothing is released/);
    fs.rmSync(garbage);
    const wrongDir = await gc(w, vm, ["--min-age", "0", "--cache-dir", path.join(vm.dir, "no-such-cache")]);
    assert.equal(wrongDir.code, 2);
    assert.match(wrongDir.stderr, /no CNI result cache at .*no-such-cache\/results/);
    assert.ok(w.vmPort(vm, MIX_NET).ips.includes(ips[1]!), "still held");

    const r = await gc(w, vm, ["--min-age", "0", "--json"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const [done] = JSON.parse(r.stdout) as Array<{ released: string[]; failures: string[] }>;
    assert.equal(done!.released.length, 1, r.stdout);
    assert.deepEqual(done!.failures, []);
    const port = w.vmPort(vm, MIX_NET).ips;
    assert.equal(port.includes(ips[1]!), false, "the forgotten pod's address left the VM's port");
    assert.ok(port.includes(ips[0]!) && port.includes(ips[2]!), "the other pods keep theirs");
    const links = execFileSync("ip", ["-n", vm.nsName, "-o", "link", "show"], { encoding: "utf8" });
    assert.equal(links.includes(veth), false, "its host veth is gone");
    const routes = execFileSync("ip", ["-n", vm.nsName, "route", "show"], { encoding: "utf8" });
    assert.equal(routes.includes(`${ips[1]!} `), false, "its host route is gone");
    assert.ok(routes.includes(`${ips[0]!} `));
    assert.ok(await w.ping(pods[0]!.name, vm.ip), "a remaining pod still reaches its VM");
    assert.match(
      (await gc(w, vm, ["--min-age", "0"])).stdout,
      /0 allocation\(s\) to release/,
      "a second run finds nothing",
    );
    for (const p of [pods[0]!, pods[2]!]) assert.equal((await w.cni(vm, "del", p)).status, 0);
  });

  it("eni: deletes the forgotten pod's Neutron port and its host veth and masquerade chain; the other network's pods are not its to collect", async () => {
    const vm = w.vms[0]!;
    // A mix pod on the same node, of another network whose configuration is not in this conf dir.
    w.install(vm, "10-tcnp.conf", w.mixConf({ name: "mixnet" }));
    const mixPod = await w.newPod();
    const m = await w.cni(vm, "add", mixPod, { net: "mixnet" });
    assert.equal(m.status, 0, m.stderr);
    const mixIp = String((m.json!["ips"] as Array<{ address: string }>)[0]!.address).split("/")[0]!;
    w.install(vm, "10-cnichain.conflist", w.eniConf());
    const pod = await w.newPod();
    const r = await w.cni(vm, "add", pod);
    assert.equal(r.status, 0, r.stderr);
    const portsOf = (): string[] =>
      Object.values(w.em.world.ports)
        .filter((p) => p.network_id === ENI_NET && p.tags.includes("tcnp-eni"))
        .map((p) => p.id);
    assert.equal(portsOf().length, 1);
    await forget(w, vm, pod);
    const out = await gc(w, vm, ["--min-age", "0"]);
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, /released 1 of 1/);
    await w.em.settle();
    assert.deepEqual(portsOf(), [], "the pod's port is deleted");
    const links = execFileSync("ip", ["-n", vm.nsName, "-o", "link", "show"], { encoding: "utf8" });
    assert.equal(links.includes(hostVethName(pod.id, "veth0")), false);
    const nat = execFileSync("ip", ["netns", "exec", vm.nsName, "iptables-save", "-t", "nat"], { encoding: "utf8" });
    assert.equal(nat.includes(`tcnp:${pod.id}`), false, "its masquerade chain is gone");
    assert.ok(w.vmPort(vm, MIX_NET).ips.includes(mixIp), "the mix pod keeps its address");
    w.install(vm, "10-tcnp.conf", w.mixConf({ name: "mixnet" }));
    assert.equal((await w.cni(vm, "del", mixPod, { net: "mixnet" })).status, 0);
  });

  it("refuses a directory without tcnp configurations and a bad --min-age", async () => {
    const vm = w.vms[0]!;
    const empty = fs.mkdtempSync(path.join(vm.dir, "empty-"));
    assert.equal(spawnSync(distBinary, ["gc", "--conf-dir", empty], { encoding: "utf8" }).status, 2);
    assert.equal((await gc(w, vm, ["--min-age", "soon"])).code, 2);
  });
});
