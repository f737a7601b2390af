// eni mode on the real kernel through libcni, with the seed conflist as written (authUrl pointed at
// the cloud inside the topology): the NIC hot-plug, veth-host, connectivity including Services and
// NodePorts, DEL in every awkward situation, the reference plugin's own configurations.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { e2eSkipReason } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { ENI_NET, World, type VmHandle } from "../helpers/world.js";

const skip = rootSkipReason("iptables-restore", "socat", "nc") ?? e2eSkipReason();

async function snapshot(w: World, vm: VmHandle): Promise<unknown> {
  const k = w.kernel;
  return {
    links: (await k.listLinks(vm.ns)).map((l) => `${l.name} ${l.mac}`).sort(),
    routes: (await k.listRoutes(vm.ns, "all")).map((r) => `${r.dst} ${r.gw ?? ""} ${r.dev ?? ""} ${r.table}`).sort(),
    rules: (await k.listRules(vm.ns)).map((r) => JSON.stringify(r)).sort(),
    nat: [...(await k.listIptables(vm.ns, "nat"))].map(([c, r]) => `${c}:${r.join("|")}`).sort(),
    neigh: (await k.listNeighbours(vm.ns))
      .filter((n) => n.permanent === true)
      .map((n) => `${n.dev} ${n.ip}`)
      .sort(),
  };
}

const eniPorts = (w: World): string[] =>
  Object.values(w.em.world.ports)
    .filter((p) => p.tags.includes("tcnp-eni"))
    .map((p) => p.id);

describe("eni mode on the real kernel (libcni, seed conflist)", { skip: skip ?? false }, () => {
  let w: World;
  const servers: ChildProcess[] = [];
  before(async () => {
    w = await World.start({ vms: 2, home: "eni" });
    for (const vm of w.vms) w.install(vm, "10-cnichain.conflist", w.eniConf());
  });
  after(async () => {
    for (const s of servers) s.kill("SIGTERM");
    await w?.stop();
  });
  const ipOf = (r: { json?: Record<string, unknown> }): string =>
    String((r.json!["ips"] as Array<{ address: string }>)[0]!.address).split("/")[0]!;

  it("ADD gives the pod eth0 (the port's MAC and address) and veth0; DEL returns the NIC, deletes the port, and leaves the VM as before", async () => {
    const vm = w.vms[0]!;
    const pod = await w.newPod();
    const before = await snapshot(w, vm);
    const add = await w.cni(vm, "add", pod);
    assert.equal(add.status, 0, add.stderr);
    const port = Object.values(w.em.world.ports).find((p) => p.tags.includes("tcnp-eni"))!;
    const eth0 = await w.kernel.getLink(pod.path, "eth0");
    assert.equal(eth0?.mac, port.mac_address);
    assert.equal(eth0?.alias, "ens4");
    const ip = ipOf(add);
    assert.equal(ip, port.fixed_ips[0]!.ip_address);
    assert.deepEqual(
      (await w.kernel.listAddresses(pod.path, "eth0")).filter((a) => !a.cidr.includes(":")).map((a) => a.cidr),
      [`${ip}/24`],
    );
    const routes = (await w.kernel.listRoutes(pod.path))
      .map((r) => `${r.dst} ${r.gw ?? "-"} ${r.dev} ${r.scope}`)
      .sort();
    assert.deepEqual(
      routes,
      [
        "0.0.0.0/0 10.10.20.1 eth0 global",
        "10.10.20.0/24 - eth0 link",
        `${vm.ip}/32 - veth0 link`,
        `10.96.0.0/12 ${vm.ip} veth0 global`,
      ].sort(),
    );
    assert.ok((await w.kernel.getLink(pod.path, "veth0"))?.up);
    assert.ok(
      (await w.kernel.listRoutes(vm.ns)).some(
        (r) => r.dst === `${ip}/32` && r.dev?.startsWith("veth") && r.scope === "link",
      ),
    );
    assert.equal(
      (await w.kernel.listRules(vm.ns)).some((r) => r.priority === 1024 || r.iif !== undefined),
      false,
      "no host-side policy routing",
    );
    const del = await w.cni(vm, "del", pod);
    assert.equal(del.status, 0, del.stderr);
    const log = (await w.exec(vm.nsName, ["cat", `${vm.dir}/tcnp.log`])).stdout;
    assert.match(log, /"msg":"returned the NIC to the VM".*"name":"ens4"/);
    await w.em.settle();
    assert.deepEqual(eniPorts(w), [], "the port is detached and deleted");
    assert.deepEqual(await snapshot(w, vm), before);
    // The seed conflist is 0.3.1, which has no CHECK; at 0.4.0 CHECK passes.
    w.install(vm, "10-cnichain.conflist", w.eniConf({ cniVersion: "0.4.0" }));
    try {
      const p2 = await w.newPod();
      assert.equal((await w.cni(vm, "add", p2)).status, 0);
      const check = await w.cni(vm, "check", p2);
      assert.equal(check.status, 0, check.stderr);
      assert.equal((await w.cni(vm, "del", p2)).status, 0);
    } finally {
      w.install(vm, "10-cnichain.conflist", w.eniConf());
    }
  });

  it("connects pod ↔ another VM directly, pod ↔ its VM, pod → a Service backed on another VM, pod → outside, NodePort → local pod", async () => {
    const [vm1, vm2] = [w.vms[0]!, w.vms[1]!];
    const pod1 = await w.newPod();
    const pod2 = await w.newPod();
    const a1 = await w.cni(vm1, "add", pod1);
    const a2 = await w.cni(vm2, "add", pod2);
    try {
      assert.equal(a1.status, 0, a1.stderr);
      assert.equal(a2.status, 0, a2.stderr);
      const [ip1, ip2] = [ipOf(a1), ipOf(a2)];
      // Direct: the route to the other VM is the pod's own NIC, not veth0.
      assert.match((await w.exec(pod1.name, ["ip", "route", "get", vm2.ip])).stdout, /dev eth0/);
      assert.ok(await w.ping(pod1.name, vm2.ip), "pod → another VM");
      assert.ok(await w.ping(vm2.nsName, ip1), "another VM → pod");
      assert.ok(await w.ping(pod1.name, vm1.ip), "pod → its VM (via veth0)");
      assert.ok(await w.ping(vm1.nsName, ip1), "its VM → pod");
      assert.ok(await w.ping(pod1.name, ip2), "pod → pod on another VM");
      assert.ok(await w.ping(pod1.name, w.topo.externalClientIp), "pod → outside through the router");
      // Two TCP servers: a Service backend in pod2, a NodePort target in pod1.
      for (const [ns, port, word] of [
        [pod2.name, 8080, "backend-ok"],
        [pod1.name, 8081, "local-ok"],
      ] as const) {
        const s = spawn(
          "ip",
          ["netns", "exec", ns, "socat", `TCP-LISTEN:${port},reuseaddr,fork`, `SYSTEM:echo ${word}`],
          { stdio: "ignore" },
        );
        servers.push(s);
      }
      await new Promise((r) => setTimeout(r, 300));
      // kube-proxy-style rules on vm1: a ClusterIP DNAT, and a NodePort DNAT to the local pod (no SNAT).
      for (const rule of [
        [
          "-t",
          "nat",
          "-A",
          "PREROUTING",
          "-d",
          "10.96.0.10/32",
          "-p",
          "tcp",
          "--dport",
          "80",
          "-j",
          "DNAT",
          "--to-destination",
          `${ip2}:8080`,
        ],
        [
          "-t",
          "nat",
          "-A",
          "OUTPUT",
          "-d",
          "10.96.0.10/32",
          "-p",
          "tcp",
          "--dport",
          "80",
          "-j",
          "DNAT",
          "--to-destination",
          `${ip2}:8080`,
        ],
        [
          "-t",
          "nat",
          "-A",
          "PREROUTING",
          "-d",
          `${vm1.ip}/32`,
          "-p",
          "tcp",
          "--dport",
          "30080",
          "-j",
          "DNAT",
          "--to-destination",
          `${ip1}:8081`,
        ],
      ])
        assert.equal((await w.exec(vm1.nsName, ["iptables", ...rule])).status, 0);
      try {
        const svc = await w.exec(pod1.name, ["nc", "-w", "3", "10.96.0.10", "80"]);
        assert.equal(svc.stdout.trim(), "backend-ok", `pod → Service: ${svc.stderr}`);
        const np = await w.exec(w.topo.ns.ext.slice("/var/run/netns/".length), ["nc", "-w", "3", vm1.ip, "30080"]);
        assert.equal(np.stdout.trim(), "local-ok", `outside → NodePort → local pod: ${np.stderr}`);
        const np2 = await w.exec(vm2.nsName, ["nc", "-w", "3", vm1.ip, "30080"]);
        assert.equal(np2.stdout.trim(), "local-ok", "another VM → NodePort → local pod");
      } finally {
        for (const s of servers.splice(0)) s.kill("SIGTERM");
        await w.exec(vm1.nsName, ["iptables", "-t", "nat", "-F", "PREROUTING"]);
        await w.exec(vm1.nsName, ["iptables", "-t", "nat", "-F", "OUTPUT"]);
      }
    } finally {
      assert.equal((await w.cni(vm1, "del", pod1)).status, 0);
      assert.equal((await w.cni(vm2, "del", pod2)).status, 0);
    }
  });

  it("DEL after the pod's namespace was deleted, DEL twice, DEL of an unknown container: all succeed, nothing left", async () => {
    const vm = w.vms[0]!;
    const before = await snapshot(w, vm);
    const pod = await w.newPod();
    assert.equal((await w.cni(vm, "add", pod)).status, 0);
    await w.removePodNetns(pod.name);
    const del = await w.cni(vm, "del", pod);
    assert.equal(del.status, 0, del.stderr);
    assert.equal((await w.cni(vm, "del", pod)).status, 0, "DEL twice");
    const unknown = await w.plugin(
      vm,
      "host-device",
      { CNI_COMMAND: "DEL", CNI_CONTAINERID: "never-added-1", CNI_NETNS: "", CNI_IFNAME: "eth0" },
      JSON.stringify({ ...(w.eniConf()["plugins"] as object[])[0], name: "cni0", cniVersion: "0.3.1" }),
    );
    assert.equal(unknown.status, 0, unknown.stdout);
    const unknownVeth = await w.plugin(
      vm,
      "veth-host",
      { CNI_COMMAND: "DEL", CNI_CONTAINERID: "never-added-1", CNI_NETNS: "", CNI_IFNAME: "eth0" },
      JSON.stringify({ ...(w.eniConf()["plugins"] as object[])[1], name: "cni0", cniVersion: "0.3.1" }),
    );
    assert.equal(unknownVeth.status, 0, unknownVeth.stdout);
    await w.em.settle();
    assert.deepEqual(eniPorts(w), []);
    assert.deepEqual(await snapshot(w, vm), before);
  });

  it("an attach that never produces a NIC times out with a clear error and leaves no port", async () => {
    const vm = w.vms[0]!;
    const conf = w.eniConf();
    ((conf["plugins"] as Array<Record<string, unknown>>)[0]!["ipam"] as Record<string, unknown>)["timeouts"] = {
      nic: 1,
    };
    w.install(vm, "10-cnichain.conflist", conf);
    try {
      const before = await snapshot(w, vm);
      w.em.addFault({ kind: "no-nic", remaining: 1 });
      const pod = await w.newPod();
      const add = await w.cni(vm, "add", pod);
      assert.notEqual(add.status, 0);
      assert.match(add.stderr, /no NIC with that MAC appeared in this VM within 1 s/);
      await w.em.settle();
      assert.deepEqual(eniPorts(w), []);
      assert.deepEqual(await snapshot(w, vm), before);
    } finally {
      w.install(vm, "10-cnichain.conflist", w.eniConf());
    }
  });

  it("takes the reference plugin's own configurations (device by name, by hwaddr), as the reference does", async () => {
    const vm = w.vms[1]!;
    for (const plugin of ["host-device", "/usr/lib/cni/host-device"]) {
      for (const key of ["device", "hwaddr"] as const) {
        // A spare NIC in the VM (its peer sits in the network namespace).
        const mac = "02:aa:bb:cc:dd:0" + (key === "device" ? "1" : "2");
        await w.kernel.createVeth(vm.ns, {
          name: "ens9",
          mac,
          peer: { name: `sp-${key}`.slice(0, 15), netns: w.topo.ns.net },
        });
        const pod = await w.newPod();
        const conf = {
          cniVersion: "0.4.0",
          name: "ref",
          type: "host-device",
          ...(key === "device" ? { device: "ens9" } : { hwaddr: mac }),
        };
        const bin = plugin.startsWith("/") ? plugin : undefined;
        const env = { CNI_CONTAINERID: pod.id, CNI_NETNS: pod.path, CNI_IFNAME: "net1" };
        const run = (cmd: string) =>
          bin === undefined
            ? w.plugin(vm, "host-device", { ...env, CNI_COMMAND: cmd }, JSON.stringify(conf))
            : w.exec(vm.nsName, [
                "env",
                `CNI_COMMAND=${cmd}`,
                ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
                "CNI_PATH=/usr/lib/cni",
                "sh",
                "-c",
                `echo '${JSON.stringify(conf)}' | ${bin}`,
              ]);
        const add = await run("ADD");
        assert.equal(add.status, 0, `${plugin} ${key}: ${add.stdout}${add.stderr}`);
        assert.equal((await w.kernel.getLink(pod.path, "net1"))?.mac, mac, `${plugin} ${key}: moved in as net1`);
        assert.equal(await w.kernel.getLink(vm.ns, "ens9"), undefined);
        const del = await run("DEL");
        assert.equal(del.status, 0, `${plugin} ${key}: ${del.stdout}${del.stderr}`);
        assert.equal(
          (await w.kernel.getLink(vm.ns, "ens9"))?.mac,
          mac,
          `${plugin} ${key}: back under its original name`,
        );
        await w.kernel.deleteLink(vm.ns, "ens9");
        await w.removePodNetns(pod.name);
      }
    }
  });

  it("five pods on one VM at once, each with its own NIC", async () => {
    const vm = w.vms[0]!;
    const pods = await Promise.all(Array.from({ length: 5 }, () => w.newPod("f")));
    const adds = await Promise.all(pods.map((p) => w.cni(vm, "add", p)));
    adds.forEach((a, i) => assert.equal(a.status, 0, `ADD ${i}: ${a.stderr}`));
    const macs = await Promise.all(pods.map(async (p) => (await w.kernel.getLink(p.path, "eth0"))?.mac));
    assert.equal(new Set(macs).size, 5);
    assert.equal(eniPorts(w).length, 5);
    for (let i = 0; i < 5; i++) assert.ok(await w.ping(pods[i]!.name, vm.ip));
    const dels = await Promise.all(pods.map((p) => w.cni(vm, "del", p)));
    dels.forEach((d, i) => assert.equal(d.status, 0, `DEL ${i}: ${d.stderr}`));
    await w.em.settle();
    assert.deepEqual(eniPorts(w), []);
    void ENI_NET;
  });
});
