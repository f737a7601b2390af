// mix mode logic against the emulator and the fake kernel: tcnp-ipam + veth-route through the CNI
// dispatcher, as a runtime would drive them, without root.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { runCni as runCniRaw, type CniIo, type CniPlugin } from "../../src/cni/skel.js";
import { toCniError } from "../../src/plugins/errors.js";
import { FakeKernel } from "../../src/kernel/fake-kernel.js";
import { HOST } from "../../src/kernel/types.js";
import { createVethRoute } from "../../src/plugins/veth-route/plugin.js";
import { openLedger, readLedger } from "../../src/ipam/ledger-files.js";
import { ownerKey } from "../../src/ipam/ledger/records.js";
import { IpamSession } from "../../src/ipam/session.js";
import { addMany, candidateSubnets, type MixDeps } from "../../src/ipam/mix.js";
import { findVmPorts } from "../../src/ipam/vm-port.js";
import { parseNetConf } from "../../src/cni/netconf.js";
import type { Port } from "../../src/openstack/types.js";
import { cniEnv, fakeNode, mixConf, nodeSeed, VM1, VM1_MAC } from "../helpers/fake-node.js";

const runCni = (p: CniPlugin, io: CniIo): ReturnType<typeof runCniRaw> => runCniRaw(p, io, { toCniError });

const vmPortIps = (n: Awaited<ReturnType<typeof fakeNode>>): string[] =>
  Object.values(n.em.world.ports)
    .find((p) => p.device_id === VM1 && p.network_id.startsWith("b953"))!
    .fixed_ips.map((f) => f.ip_address)
    .sort();

describe("mix mode (emulator + fake kernel)", () => {
  it("ADD gives the pod an extra fixed IP of the VM's port, behind 169.254.1.1; DEL puts everything back", async () => {
    const n = await fakeNode();
    try {
      const pod = await n.kernel.createNetns("pod1");
      const plugin = createVethRoute(n.deps);
      const before = {
        ips: vmPortIps(n),
        links: await n.kernel.listLinks(HOST),
        routes: await n.kernel.listRoutes(HOST),
        proxies: await n.kernel.listNeighbours(HOST, { proxy: true }),
      };
      const add = await runCni(plugin, { env: cniEnv("ADD", "c0ffee01", pod), stdin: JSON.stringify(mixConf()) });
      assert.equal(add.exitCode, 0, add.stdout);
      const r = JSON.parse(add.stdout);
      assert.equal(r.cniVersion, "0.3.1");
      const ip = r.ips[0].address.split("/")[0] as string;
      assert.deepEqual(r.ips[0], { version: "4", interface: 1, address: `${ip}/32`, gateway: "169.254.1.1" });
      assert.deepEqual(vmPortIps(n), [...before.ips, ip].sort());
      // pod side
      assert.deepEqual(
        (await n.kernel.listAddresses(pod, "eth0")).map((a) => a.cidr),
        [`${ip}/32`],
      );
      const podRoutes = (await n.kernel.listRoutes(pod)).map((x) => `${x.dst} ${x.gw ?? ""} ${x.scope}`).sort();
      assert.deepEqual(podRoutes, ["0.0.0.0/0 169.254.1.1 global", "169.254.1.1/32  link"]);
      assert.equal((await n.kernel.listNeighbours(pod))[0]?.permanent, true);
      // host side
      const hostVeth = r.interfaces[0].name as string;
      assert.ok(
        (await n.kernel.listRoutes(HOST)).some(
          (x) => x.dst === `${ip}/32` && x.dev === hostVeth && x.scope === "global",
        ),
      );
      assert.deepEqual(await n.kernel.listNeighbours(HOST, { proxy: true }), [{ dev: "eth0", ip, proxy: true }]);
      assert.equal(
        n.kernel.readSysctl(HOST, `net/ipv4/conf/${hostVeth}/proxy_arp`),
        "1",
        "no dummy in this kernel: proxy ARP",
      );
      const check = await runCni(plugin, {
        env: cniEnv("CHECK", "c0ffee01", pod),
        stdin: JSON.stringify({ ...mixConf({ cniVersion: "0.4.0" }), prevResult: r }),
      });
      assert.equal(check.exitCode, 0, check.stdout);
      const del = await runCni(plugin, {
        env: cniEnv("DEL", "c0ffee01", pod),
        stdin: JSON.stringify({ ...mixConf(), prevResult: r }),
      });
      assert.equal(del.exitCode, 0, del.stdout);
      assert.deepEqual(vmPortIps(n), before.ips);
      assert.deepEqual(await n.kernel.listLinks(HOST), before.links);
      assert.deepEqual(await n.kernel.listRoutes(HOST), before.routes);
      assert.deepEqual(await n.kernel.listNeighbours(HOST, { proxy: true }), before.proxies);
      const again = await runCni(plugin, {
        env: cniEnv("DEL", "c0ffee01", pod),
        stdin: JSON.stringify({ ...mixConf(), prevResult: r }),
      });
      assert.equal(again.exitCode, 0, "DEL is repeatable");
    } finally {
      n.cleanup();
    }
  });

  it("uses dummy0 for the gateway where the kernel has dummy links", async () => {
    const n = await fakeNode();
    try {
      const k2 = new FakeKernel({ dummy: true });
      k2.addDevice(HOST, { name: "eth0", mac: VM1_MAC, mtu: 1450 });
      await k2.setLink(HOST, "eth0", { up: true });
      await k2.addAddress(HOST, { cidr: "10.10.10.11/24", dev: "eth0" });
      const pod = await k2.createNetns("pod1");
      const plugin = createVethRoute({ ...n.deps, kernel: async () => k2 });
      const add = await runCni(plugin, { env: cniEnv("ADD", "c0ffee02", pod), stdin: JSON.stringify(mixConf()) });
      assert.equal(add.exitCode, 0, add.stdout);
      assert.deepEqual(
        (await k2.listAddresses(HOST, "dummy0")).map((a) => a.cidr),
        ["169.254.1.1/32"],
      );
      const hostVeth = JSON.parse(add.stdout).interfaces[0].name as string;
      assert.equal(
        k2.readSysctl(HOST, `net/ipv4/conf/${hostVeth}/proxy_arp`),
        "0",
        "the dummy answers for the gateway, not proxy ARP",
      );
    } finally {
      n.cleanup();
    }
  });

  it("a cloud failure during ADD (500, dropped connection) fails with code 11 and leaves nothing", async () => {
    for (const kind of ["error", "drop", "drop-after-commit"] as const) {
      const n = await fakeNode();
      try {
        const pod = await n.kernel.createNetns("pod1");
        const before = vmPortIps(n);
        n.em.addFault({
          kind,
          service: "network",
          method: "PUT",
          path: "^/v2.0/ports/[^/]+$",
          status: 500,
          remaining: 1,
        });
        const add = await runCni(createVethRoute(n.deps), {
          env: cniEnv("ADD", "c0ffee03", pod),
          stdin: JSON.stringify(mixConf()),
        });
        assert.equal(add.exitCode, 1, `${kind}: ${add.stdout}`);
        assert.equal(JSON.parse(add.stdout).code, 11, `${kind}: ${add.stdout}`);
        assert.deepEqual(vmPortIps(n), before, `${kind}: the port is as before`);
        assert.deepEqual(
          (await n.kernel.listLinks(pod)).map((l) => l.name),
          ["lo"],
          `${kind}: no interface left in the pod`,
        );
        assert.deepEqual(
          (await n.kernel.listLinks(HOST)).map((l) => l.name),
          ["lo", "eth0", "eth1"],
          `${kind}: no veth left`,
        );
      } finally {
        n.cleanup();
      }
    }
  });

  it("converges through a 412 storm", async () => {
    const n = await fakeNode();
    try {
      const pod = await n.kernel.createNetns("pod1");
      n.em.addFault({ kind: "stale-revision", service: "network", method: "PUT", remaining: 6 });
      const add = await runCni(createVethRoute(n.deps), {
        env: cniEnv("ADD", "c0ffee04", pod),
        stdin: JSON.stringify(mixConf()),
      });
      assert.equal(add.exitCode, 0, add.stdout);
      assert.equal(n.em.faults[0]!.remaining, 0, "all six 412s were met and retried");
    } finally {
      n.cleanup();
    }
  });

  it("renews an expired token", async () => {
    const n = await fakeNode();
    try {
      const pod = await n.kernel.createNetns("pod1");
      const plugin = createVethRoute(n.deps);
      assert.equal(
        (await runCni(plugin, { env: cniEnv("ADD", "c0ffee05", pod), stdin: JSON.stringify(mixConf()) })).exitCode,
        0,
      );
      n.em.expireTokens();
      const pod2 = await n.kernel.createNetns("pod2");
      const add = await runCni(plugin, { env: cniEnv("ADD", "c0ffee06", pod2), stdin: JSON.stringify(mixConf()) });
      assert.equal(add.exitCode, 0, add.stdout);
    } finally {
      n.cleanup();
    }
  });

  it("records a pending release when Neutron is down during DEL; a later DEL or GC completes it", async () => {
    for (const finisher of ["DEL", "GC"] as const) {
      const n = await fakeNode();
      try {
        const pod = await n.kernel.createNetns("pod1");
        const plugin = createVethRoute(n.deps);
        const before = vmPortIps(n);
        const add = await runCni(plugin, {
          env: cniEnv("ADD", "c0ffee07", pod),
          stdin: JSON.stringify(mixConf({ cniVersion: "1.1.0" })),
        });
        assert.equal(add.exitCode, 0);
        n.em.addFault({ kind: "error", service: "network", status: 503 });
        const del = await runCni(plugin, {
          env: cniEnv("DEL", "c0ffee07", pod),
          stdin: JSON.stringify(mixConf({ cniVersion: "1.1.0" })),
        });
        assert.equal(JSON.parse(del.stdout).code, 11, del.stdout);
        assert.notDeepEqual(vmPortIps(n), before);
        n.em.clearFaults();
        const conf = mixConf({ cniVersion: "1.1.0", "cni.dev/valid-attachments": [] });
        const fin =
          finisher === "DEL"
            ? await runCni(plugin, { env: cniEnv("DEL", "c0ffee07", pod), stdin: JSON.stringify(conf) })
            : await runCni(plugin, {
                env: { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
                stdin: JSON.stringify(conf),
              });
        assert.equal(fin.exitCode, 0, fin.stdout);
        assert.deepEqual(vmPortIps(n), before, `${finisher} completed the release`);
      } finally {
        n.cleanup();
      }
    }
  });

  // A release whose PUT committed with its answer lost stays pending; Neutron may hand the address
  // to this node again meanwhile (a node agent's pool fill on a small subnet). Finishing the pending
  // release must then leave it: the pool's record holds it, and a pod takes it without a cloud call.
  it("a pending release whose address came back to the node's pool leaves the address on the port", async () => {
    const n = await fakeNode();
    try {
      const pod = await n.kernel.createNetns("pod1");
      const plugin = createVethRoute(n.deps);
      const add = await runCni(plugin, { env: cniEnv("ADD", "c0ffee0b", pod), stdin: JSON.stringify(mixConf()) });
      assert.equal(add.exitCode, 0, add.stdout);
      const r = JSON.parse(add.stdout);
      const ip = r.ips[0].address.split("/")[0] as string;
      n.em.addFault({ kind: "drop-after-commit", service: "network", method: "PUT", remaining: 1 });
      const del = await runCni(plugin, {
        env: cniEnv("DEL", "c0ffee0b", pod),
        stdin: JSON.stringify({ ...mixConf(), prevResult: r }),
      });
      assert.equal(JSON.parse(del.stdout).code, 11, del.stdout);
      assert.ok(!vmPortIps(n).includes(ip), "the release committed");
      // The address comes back to this VM's port as a pool address (what an agent's fill does).
      const port = Object.values(n.em.world.ports).find((p) => p.device_id === VM1 && p.network_id.startsWith("b953"))!;
      port.fixed_ips.push({ subnet_id: port.fixed_ips[0]!.subnet_id, ip_address: ip });
      port.revision_number++;
      const key = ownerKey({ containerId: "c0ffee0b", ifname: "eth0" });
      const open = openLedger(n.stateDir);
      const pending = open.ledger.get(key)!;
      assert.ok(pending.kind === "intent" && pending.op === "release", "the release is pending");
      open.ledger.adopt({ ...pending, ip, portId: pending.portId! }, Date.now());
      open.close();
      // The runtime's repeated DEL finishes the pending release.
      const again = await runCni(plugin, {
        env: cniEnv("DEL", "c0ffee0b", pod),
        stdin: JSON.stringify({ ...mixConf(), prevResult: r }),
      });
      assert.equal(again.exitCode, 0, again.stdout);
      assert.ok(vmPortIps(n).includes(ip), "the pool's address stays on the port");
      const after = readLedger(n.stateDir);
      assert.equal(
        after.find((r) => r.kind !== "pool" && r.ip === ip),
        undefined,
        "the pending release is done",
      );
      assert.equal(after.filter((r) => r.kind === "pool" && r.ip === ip).length, 1, "the pool keeps its record");
    } finally {
      n.cleanup();
    }
  });

  // Marking an untagged port (tcnp's tags) bumps its revision: the write goes with the revision read
  // after the tags, not the one before them (which Neutron would refuse with a 412 every time).
  it("the first write on a port it has just tagged is not refused for the tags' revision", async () => {
    const n = await fakeNode();
    try {
      const s = new IpamSession(n.deps, parseNetConf(JSON.stringify(mixConf()), "ADD"));
      const refused: string[] = [];
      const neutron = new Proxy(s.clients.neutron, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (prop !== "updateFixedIps" || typeof v !== "function") return typeof v === "function" ? v.bind(target) : v;
          return async (...args: unknown[]) => {
            try {
              return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            } catch (e) {
              refused.push(String(e));
              throw e;
            }
          };
        },
      });
      const d: MixDeps = { cfg: s.cfg, neutron, clock: n.deps.clock, log: n.deps.log };
      const vm = (await findVmPorts(s.clients.neutron, await n.deps.kernel(), VM1, s.cfg.networks, s.cache))[0]!;
      const subnet = (await candidateSubnets(s.clients.neutron, s.cfg, vm.networkId, s.cache, Date.now()))[0]!;
      const port = await s.clients.neutron.getPort(vm.portId);
      assert.ok(!port.tags.some((t) => t.startsWith("tcnp")), `untagged at first: ${port.tags.join(",")}`);
      const base = { write: () => {}, clear: () => {}, known: () => false };
      const got = await addMany(d, vm, subnet, base, 1, { known: port });
      assert.equal(got.length, 1);
      assert.deepEqual(refused, []);
      assert.ok((await s.clients.neutron.getPort(vm.portId)).tags.some((t) => t.startsWith("tcnp")));
    } finally {
      n.cleanup();
    }
  });

  // A pool's batch may write with the port as the previous batch read it back: when someone wrote
  // since, Neutron refuses the write (412) and the batch reads the port again; nothing is lost.
  it("a batch written with a stale copy of the port is refused, reread and lands without losing the other write", async () => {
    const n = await fakeNode();
    try {
      const s = new IpamSession(n.deps, parseNetConf(JSON.stringify(mixConf()), "ADD"));
      const d: MixDeps = { cfg: s.cfg, neutron: s.clients.neutron, clock: n.deps.clock, log: n.deps.log };
      const vm = (await findVmPorts(s.clients.neutron, await n.deps.kernel(), VM1, s.cfg.networks, s.cache))[0]!;
      const subnet = (await candidateSubnets(s.clients.neutron, s.cfg, vm.networkId, s.cache, Date.now()))[0]!;
      // No ledger here: this is the cloud write alone.
      const base = { write: () => {}, clear: () => {}, known: () => false };
      let seen: Port | undefined;
      const first = await addMany(d, vm, subnet, base, 2, { seen: (p) => (seen = p) });
      assert.equal(first.length, 2);
      assert.ok(seen !== undefined && first.every((ip) => seen!.fixed_ips.some((f) => f.ip_address === ip)));
      // Another writer adds an address after that read-back: the copy is stale now.
      const other = await addMany(d, vm, subnet, base, 1);
      const second = await addMany(d, vm, subnet, base, 2, { known: seen! });
      assert.equal(second.length, 2);
      const onPort = vmPortIps(n);
      for (const ip of [...first, ...other, ...second]) assert.ok(onPort.includes(ip), `${ip} on the port`);
      assert.equal(new Set([...first, ...other, ...second]).size, 5);
    } finally {
      n.cleanup();
    }
  });

  // tcnp gc reads the valid set before the plugins' GC runs; a pod whose ADD lands in between is not
  // in it. The decision is taken per attachment inside GC, under the lock, with the age check there.
  it("GC keeps an attachment younger than the grace period it is given, and collects it once older", async () => {
    const n = await fakeNode();
    try {
      const pod = await n.kernel.createNetns("pod1");
      const plugin = createVethRoute(n.deps);
      const before = vmPortIps(n);
      const add = await runCni(plugin, {
        env: cniEnv("ADD", "c0ffee0a", pod),
        stdin: JSON.stringify(mixConf({ cniVersion: "1.1.0" })),
      });
      assert.equal(add.exitCode, 0, add.stdout);
      const gc = (minAge: number) =>
        runCni(plugin, {
          env: { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
          stdin: JSON.stringify(
            mixConf({ cniVersion: "1.1.0", "cni.dev/valid-attachments": [], tcnpGcMinAgeSeconds: minAge }),
          ),
        });
      assert.equal((await gc(300)).exitCode, 0);
      assert.notDeepEqual(vmPortIps(n), before, "the young pod keeps its address");
      assert.ok(await n.kernel.getLink(pod, "eth0"), "and its veth");
      assert.equal((await gc(0)).exitCode, 0);
      assert.deepEqual(vmPortIps(n), before, "an attachment past the grace period is collected");
      assert.equal(await n.kernel.getLink(pod, "eth0"), undefined);
    } finally {
      n.cleanup();
    }
  });

  it("50 simultaneous ADDs on one VM get 50 distinct addresses; 50 DELs leave the port as before", async () => {
    const n = await fakeNode();
    try {
      const plugin = createVethRoute(n.deps);
      const before = vmPortIps(n);
      const pods = await Promise.all(Array.from({ length: 50 }, (_, i) => n.kernel.createNetns(`p${i}`)));
      const adds = await Promise.all(
        pods.map((p, i) =>
          runCni(plugin, { env: cniEnv("ADD", `c${String(i).padStart(7, "0")}`, p), stdin: JSON.stringify(mixConf()) }),
        ),
      );
      for (const a of adds) assert.equal(a.exitCode, 0, a.stdout);
      const ips = adds.map((a) => JSON.parse(a.stdout).ips[0].address as string);
      assert.equal(new Set(ips).size, 50);
      assert.equal(vmPortIps(n).length, before.length + 50);
      const dels = await Promise.all(
        pods.map((p, i) =>
          runCni(plugin, { env: cniEnv("DEL", `c${String(i).padStart(7, "0")}`, p), stdin: JSON.stringify(mixConf()) }),
        ),
      );
      for (const d of dels) assert.equal(d.exitCode, 0, d.stdout);
      assert.deepEqual(vmPortIps(n), before);
    } finally {
      n.cleanup();
    }
  });

  // Issue 13 item 6: an address a pod gave back stays on the VM's port for the cool-down, so no new
  // pod gets it while conntrack elsewhere may still hold the old pod's flows; then it goes back.
  it("a released address cools down on the port: not given to a new pod, persisted, given back when due", async () => {
    const seed = nodeSeed();
    // Two free addresses besides the VM's own (.11): .12 and .13.
    seed.networks![0]!.subnets![0]!.allocation_pools = [{ start: "10.10.10.11", end: "10.10.10.13" }];
    const n = await fakeNode({ seed });
    try {
      const conf = (extra: Record<string, unknown> = {}) => {
        const c = mixConf({ cniVersion: "1.1.0", ...extra });
        (c["ipam"] as Record<string, unknown>)["coolDownSeconds"] = 1;
        return JSON.stringify(c);
      };
      const pods = await Promise.all(["a", "b", "c"].map((x) => n.kernel.createNetns(`pod-${x}`)));
      const call = (cmd: string, id: string, i: number) =>
        runCni(createVethRoute(n.deps), { env: cniEnv(cmd, id, pods[i]!), stdin: conf() });
      const a = await call("ADD", "c001a", 0);
      assert.equal(a.exitCode, 0, a.stdout);
      const x = JSON.parse(a.stdout).ips[0].address.split("/")[0] as string;
      assert.equal((await call("DEL", "c001a", 0)).exitCode, 0);
      assert.ok(vmPortIps(n).includes(x), "the address stays on the port while it cools down");
      assert.equal(await n.kernel.getLink(pods[0]!, "eth0"), undefined, "the pod's side is gone at once");
      const cooling = readLedger(n.stateDir).filter((r) => r.kind === "cooling" && r.ip === x);
      assert.equal(cooling.length, 1, "persisted as a record of its own");
      assert.equal((await call("DEL", "c001a", 0)).exitCode, 0, "a repeated DEL is a no-op");
      assert.ok(vmPortIps(n).includes(x));
      // A new plugin process (call() builds one per call) sees the cooling record: B gets the other address.
      const b = await call("ADD", "c001b", 1);
      assert.equal(b.exitCode, 0, b.stdout);
      const y = JSON.parse(b.stdout).ips[0].address.split("/")[0] as string;
      assert.notEqual(y, x, "the cooling address is not given to a new pod");
      const full = await call("ADD", "c001c", 2);
      assert.equal(JSON.parse(full.stdout).code, 100, `only the cooling address is left: exhausted (${full.stdout})`);
      const gcEarly = await runCni(createVethRoute(n.deps), {
        env: { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
        stdin: conf({ "cni.dev/valid-attachments": [{ containerID: "c001b", ifname: "eth0" }] }),
      });
      assert.equal(gcEarly.exitCode, 0, gcEarly.stdout);
      assert.ok(vmPortIps(n).includes(x), "GC leaves an address that is still cooling");
      await new Promise((r) => setTimeout(r, 1100));
      // Due now: an ADD that finds the subnets full gives due addresses back and tries again.
      const c = await call("ADD", "c001c", 2);
      assert.equal(c.exitCode, 0, c.stdout);
      assert.equal(JSON.parse(c.stdout).ips[0].address, `${x}/32`, "after its cool-down the address serves again");
      assert.equal((await call("DEL", "c001b", 1)).exitCode, 0);
      assert.equal((await call("DEL", "c001c", 2)).exitCode, 0);
      await new Promise((r) => setTimeout(r, 1100));
      const gc = await runCni(createVethRoute(n.deps), {
        env: { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
        stdin: conf({ "cni.dev/valid-attachments": [] }),
      });
      assert.equal(gc.exitCode, 0, gc.stdout);
      assert.deepEqual(vmPortIps(n), ["10.10.10.11"], "GC gives due addresses back to Neutron");
      assert.deepEqual(readLedger(n.stateDir), [], "no record is left");
    } finally {
      n.cleanup();
    }
  });
});
