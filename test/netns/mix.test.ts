// mix mode on the real kernel through libcni, with the seed configuration as written (authUrl
// pointed at the cloud inside the topology): state, connectivity, concurrency, faults, DEL.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { HOST } from "../../src/kernel/types.js";
import { e2eSkipReason } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { MIX_NET, World, type VmHandle } from "../helpers/world.js";

const skip = rootSkipReason("iptables-restore") ?? e2eSkipReason();

async function vmSnapshot(w: World, vm: VmHandle): Promise<unknown> {
  const k = w.kernel;
  return {
    links: (await k.listLinks(vm.ns)).map((l) => `${l.name} ${l.mac} ${l.up}`).sort(),
    addrs: (await k.listAddresses(vm.ns)).map((a) => `${a.dev} ${a.cidr}`).sort(),
    routes: (await k.listRoutes(vm.ns, "all")).map((r) => `${r.dst} ${r.gw ?? ""} ${r.dev ?? ""} ${r.table}`).sort(),
    rules: (await k.listRules(vm.ns)).map((r) => JSON.stringify(r)).sort(),
    neigh: (await k.listNeighbours(vm.ns))
      .filter((n) => n.permanent === true)
      .map((n) => `${n.dev} ${n.ip} ${n.mac}`)
      .sort(),
    proxies: (await k.listNeighbours(vm.ns, { proxy: true })).map((n) => `${n.dev} ${n.ip}`).sort(),
    sysctls: [
      "net.ipv4.ip_forward",
      "net.ipv4.conf.eth0.proxy_arp",
      "net.ipv4.conf.all.proxy_arp",
      "net.ipv4.conf.eth0.forwarding",
    ].map((s) => `${s}=${k.readSysctl(vm.ns, s)}`),
  };
}

describe("mix mode on the real kernel (libcni, seed configuration)", { skip: skip ?? false }, () => {
  let w: World;
  before(async () => {
    w = await World.start({ vms: 2, home: "mix" });
    for (const vm of w.vms) w.install(vm, "10-tcnp.conf", w.mixConf());
  });
  after(async () => w?.stop());

  it("ADD makes the seed's observed state; CHECK passes; DEL leaves the VM and its port exactly as before", async () => {
    const vm = w.vms[0]!;
    const pod = await w.newPod();
    const beforeVm = await vmSnapshot(w, vm);
    const beforePort = w.vmPort(vm, MIX_NET).ips;
    const add = await w.cni(vm, "add", pod);
    assert.equal(add.status, 0, add.stderr);
    const ip = String((add.json!["ips"] as Array<{ address: string }>)[0]!.address).split("/")[0]!;
    assert.deepEqual(
      w.vmPort(vm, MIX_NET).ips,
      [...beforePort, ip].sort(),
      "the address is an extra fixed IP of the VM's port",
    );
    const k = w.kernel;
    // Pod: eth0 ip/32, default via 169.254.1.1, 169.254.1.1 scope link, permanent neighbour.
    assert.deepEqual(
      (await k.listAddresses(pod.path, "eth0")).filter((a) => !a.cidr.includes(":")).map((a) => a.cidr),
      [`${ip}/32`],
    );
    const podRoutes = (await k.listRoutes(pod.path))
      .filter((r) => !r.dst.includes(":"))
      .map((r) => `${r.dst} via=${r.gw ?? "-"} dev=${r.dev} scope=${r.scope}`)
      .sort();
    assert.deepEqual(podRoutes, [
      "0.0.0.0/0 via=169.254.1.1 dev=eth0 scope=global",
      "169.254.1.1/32 via=- dev=eth0 scope=link",
    ]);
    const n = (await k.listNeighbours(pod.path)).find((x) => x.ip === "169.254.1.1");
    assert.equal(n?.permanent, true);
    const hostVeth = (add.json!["interfaces"] as Array<{ name: string; mac: string }>)[0]!;
    assert.equal(n?.mac, hostVeth.mac);
    // VM: ip dev vethX scope global; the gateway answered by proxy ARP on vethX; the pod published on eth0.
    assert.ok(
      (await k.listRoutes(vm.ns)).some(
        (r) => r.dst === `${ip}/32` && r.dev === hostVeth.name && r.scope === "global" && r.gw === undefined,
      ),
    );
    assert.equal(k.readSysctl(vm.ns, `net/ipv4/conf/${hostVeth.name}/proxy_arp`), "1");
    assert.deepEqual(
      (await k.listNeighbours(vm.ns, { proxy: true })).map((x) => `${x.dev} ${x.ip}`),
      [`eth0 ${ip}`],
    );
    assert.equal(
      (await k.listAddresses(vm.ns)).some((a) => a.cidr.startsWith("169.254.169.254") || a.cidr === "169.254.0.0/16"),
      false,
      "nothing captures the metadata address",
    );
    // 0.3.1 has no CHECK verb (libcni refuses it); the same configuration at 0.4.0 does.
    assert.notEqual((await w.cni(vm, "check", pod)).status, 0);
    const del = await w.cni(vm, "del", pod);
    assert.equal(del.status, 0, del.stderr);
    assert.deepEqual(await vmSnapshot(w, vm), beforeVm);
    assert.deepEqual(w.vmPort(vm, MIX_NET).ips, beforePort);
    assert.equal((await w.cni(vm, "del", pod)).status, 0, "a second DEL succeeds");
    w.install(vm, "10-tcnp.conf", w.mixConf({ cniVersion: "0.4.0" }));
    try {
      const pod2 = await w.newPod();
      assert.equal((await w.cni(vm, "add", pod2)).status, 0);
      const check = await w.cni(vm, "check", pod2);
      assert.equal(check.status, 0, check.stderr);
      assert.equal((await w.cni(vm, "del", pod2)).status, 0);
      assert.deepEqual(await vmSnapshot(w, vm), beforeVm);
    } finally {
      w.install(vm, "10-tcnp.conf", w.mixConf());
    }
  });

  it("connects pod ↔ its VM, pod ↔ pod on the same VM, pod ↔ the other VM, pod ↔ pod on the other VM, pod → router", async () => {
    const [vm1, vm2] = [w.vms[0]!, w.vms[1]!];
    const pods = [await w.newPod(), await w.newPod(), await w.newPod()];
    const where = [vm1, vm1, vm2];
    const ips: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await w.cni(where[i]!, "add", pods[i]!);
      assert.equal(r.status, 0, r.stderr);
      ips.push(String((r.json!["ips"] as Array<{ address: string }>)[0]!.address).split("/")[0]!);
    }
    const checks: Array<[string, string, string]> = [
      ["pod → its VM", pods[0]!.name, vm1.ip],
      ["VM → its pod", vm1.nsName, ips[0]!],
      ["pod → pod, same VM", pods[0]!.name, ips[1]!],
      ["pod → the other VM", pods[0]!.name, vm2.ip],
      ["other VM → pod", vm2.nsName, ips[0]!],
      ["pod → pod on the other VM", pods[0]!.name, ips[2]!],
      ["pod on the other VM → pod", pods[2]!.name, ips[0]!],
      ["pod → router", pods[0]!.name, "10.10.10.1"],
    ];
    for (const [what, from, to] of checks) assert.ok(await w.ping(from, to), `${what} (${to})`);
    for (let i = 0; i < 3; i++) assert.equal((await w.cni(where[i]!, "del", pods[i]!)).status, 0);
  });

  it("50 simultaneous ADDs on one VM and 20 on each of two VMs: distinct addresses on the right port; all DELs restore both ports", async () => {
    const [vm1, vm2] = [w.vms[0]!, w.vms[1]!];
    for (const [plan, label] of [
      [[[vm1, 50]]],
      [
        [
          [vm1, 20],
          [vm2, 20],
        ],
      ],
    ].map((p) => [p[0], p[0]!.length === 1 ? "50 on one VM" : "20 on each of two VMs"]) as Array<
      [Array<[VmHandle, number]>, string]
    >) {
      const before = new Map(w.vms.map((v) => [v.name, w.vmPort(v, MIX_NET).ips]));
      const jobs: Array<{ vm: VmHandle; pod: Awaited<ReturnType<World["newPod"]>> }> = [];
      for (const [vm, count] of plan) for (let i = 0; i < count; i++) jobs.push({ vm, pod: await w.newPod("c") });
      const adds = await Promise.all(jobs.map((j) => w.cni(j.vm, "add", j.pod)));
      adds.forEach((a, i) => assert.equal(a.status, 0, `${label}: ADD ${i}: ${a.stderr}`));
      const ips = adds.map((a) => String((a.json!["ips"] as Array<{ address: string }>)[0]!.address).split("/")[0]!);
      assert.equal(new Set(ips).size, jobs.length, `${label}: all addresses distinct`);
      jobs.forEach((j, i) =>
        assert.ok(w.vmPort(j.vm, MIX_NET).ips.includes(ips[i]!), `${label}: ${ips[i]} is on ${j.vm.name}'s port`),
      );
      const dels = await Promise.all(jobs.map((j) => w.cni(j.vm, "del", j.pod)));
      dels.forEach((d, i) => assert.equal(d.status, 0, `${label}: DEL ${i}: ${d.stderr}`));
      for (const v of w.vms)
        assert.deepEqual(w.vmPort(v, MIX_NET).ips, before.get(v.name), `${label}: ${v.name}'s port is as before`);
      for (const j of jobs) await w.removePodNetns(j.pod.name);
    }
  });

  it("a 500 or a dropped connection during ADD fails with code 11 and leaves nothing; a 412 storm and an expired token are handled", async () => {
    const vm = w.vms[0]!;
    for (const kind of ["error", "drop", "drop-after-commit"] as const) {
      const pod = await w.newPod();
      const before = await vmSnapshot(w, vm);
      const port = w.vmPort(vm, MIX_NET).ips;
      w.em.addFault({
        kind,
        service: "network",
        method: "PUT",
        path: "^/v2.0/ports/[^/]+$",
        status: 500,
        remaining: 1,
      });
      const add = await w.cni(vm, "add", pod);
      assert.notEqual(add.status, 0, `${kind}: ADD must fail`);
      assert.match(add.stderr + add.stdout, /code|11|Try again/i);
      const err = await w.plugin(
        vm,
        "veth-route",
        { CNI_COMMAND: "DEL", CNI_CONTAINERID: pod.id, CNI_NETNS: pod.path, CNI_IFNAME: "eth0" },
        JSON.stringify(w.mixConf()),
      );
      assert.equal(err.status, 0, "the runtime's DEL after a failed ADD succeeds");
      assert.deepEqual(w.vmPort(vm, MIX_NET).ips, port, `${kind}: the port is as before`);
      assert.deepEqual(await vmSnapshot(w, vm), before, `${kind}: the VM is as before`);
      assert.deepEqual(
        (await w.kernel.listLinks(pod.path)).map((l) => l.name),
        ["lo"],
        `${kind}: nothing in the pod`,
      );
    }
    const direct = await w.newPod();
    w.em.addFault({
      kind: "error",
      service: "network",
      method: "PUT",
      path: "^/v2.0/ports/[^/]+$",
      status: 500,
      remaining: 1,
    });
    const r = await w.plugin(
      vm,
      "veth-route",
      { CNI_COMMAND: "ADD", CNI_CONTAINERID: direct.id, CNI_NETNS: direct.path, CNI_IFNAME: "eth0" },
      JSON.stringify(w.mixConf()),
    );
    assert.equal(r.json?.["code"], 11, r.stdout);
    assert.match(String(r.json?.["details"]), /PUT \/v2.0\/ports\/.* 500 HTTPInternalServerError/);
    w.em.addFault({ kind: "stale-revision", service: "network", method: "PUT", remaining: 5 });
    const storm = await w.newPod();
    assert.equal((await w.cni(vm, "add", storm)).status, 0, "a 412 storm converges");
    w.em.expireTokens();
    const fresh = await w.newPod();
    assert.equal((await w.cni(vm, "add", fresh)).status, 0, "an expired token is renewed");
    for (const p of [storm, fresh]) assert.equal((await w.cni(vm, "del", p)).status, 0);
  });

  it("Neutron down during DEL leaves a pending release that a later DEL completes", async () => {
    const vm = w.vms[1]!;
    const pod = await w.newPod();
    const port = w.vmPort(vm, MIX_NET).ips;
    assert.equal((await w.cni(vm, "add", pod)).status, 0);
    w.em.addFault({ id: "down", kind: "error", service: "network", status: 503 });
    const del = await w.cni(vm, "del", pod);
    assert.notEqual(del.status, 0, "DEL reports try-again while Neutron is down");
    assert.notDeepEqual(w.vmPort(vm, MIX_NET).ips, port);
    w.em.clearFaults();
    const again = await w.plugin(
      vm,
      "veth-route",
      { CNI_COMMAND: "DEL", CNI_CONTAINERID: pod.id, CNI_NETNS: pod.path, CNI_IFNAME: "eth0" },
      JSON.stringify(w.mixConf()),
    );
    assert.equal(again.status, 0, again.stdout);
    assert.deepEqual(w.vmPort(vm, MIX_NET).ips, port);
    assert.deepEqual((await w.kernel.listLinks(vm.ns)).map((l) => l.name).sort(), ["eth0", "lo"]);
    void HOST;
  });
});
