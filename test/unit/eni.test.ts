// eni mode logic against the emulator and the fake kernel: the seed conflist (host-device with
// tcnp-ipam, then veth-host), with Nova's hot-plug simulated in the fake kernel.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HOST } from "../../src/kernel/types.js";
import { readLedger } from "../../src/ipam/ledger-files.js";
import { createHostDevice } from "../../src/plugins/host-device/plugin.js";
import { createVethHost } from "../../src/plugins/veth-host/plugin.js";
import { runChain } from "../helpers/chain.js";
import { cniEnv, ENI_NET, fakeNode, nodeSeed, type FakeNode } from "../helpers/fake-node.js";

const eniConf = (v = "0.4.0", coolDownSeconds = 0): Record<string, unknown> => ({
  name: "cni0",
  cniVersion: v,
  plugins: [
    {
      type: "host-device",
      ipam: {
        type: "tcnp-ipam",
        openstackConf: {
          username: "admin",
          password: "secret",
          project: "admin",
          domain: "default",
          authUrl: "http://cloud.test/v3",
        },
        neutronConf: { networks: [ENI_NET], mode: "eni" },
        routes: [{ dst: "0.0.0.0/0" }],
        // 0: ports are deleted at DEL, as the other tests expect; the cool-down has a test of its own
        coolDownSeconds,
      },
    },
    {
      type: "veth-host",
      serviceCidr: "10.96.0.0/12",
      hostInterface: "eth0",
      containerInterface: "veth0",
      ipMasq: true,
    },
  ],
});

async function eniNode(opts: Parameters<typeof fakeNode>[0] = {}): Promise<FakeNode> {
  const n = await fakeNode(opts);
  let seq = 4;
  n.em.hooks = {
    attach: async (_s, port) => n.kernel.addDevice(HOST, { name: `ens${seq++}`, mac: port.mac_address, mtu: 1450 }),
    detach: async (_s, port) => {
      const l = (await n.kernel.listLinks(HOST)).find((x) => x.mac === port.mac_address);
      if (l !== undefined) await n.kernel.deleteLink(HOST, l.name);
    },
  };
  return n;
}

const plugins = (n: FakeNode) => ({ "host-device": createHostDevice(n.deps), "veth-host": createVethHost(n.deps) });
const podPorts = (n: FakeNode) => Object.values(n.em.world.ports).filter((p) => p.tags.includes("tcnp-eni"));

describe("eni mode (emulator + fake kernel)", () => {
  it("ADD hot-plugs a port, moves its NIC into the pod as eth0 with veth0 beside it; DEL returns the NIC and deletes the port", async () => {
    const n = await eniNode();
    try {
      const pod = await n.kernel.createNetns("pod1");
      const before = {
        links: await n.kernel.listLinks(HOST),
        routes: await n.kernel.listRoutes(HOST),
        nat: await n.kernel.listIptables(HOST, "nat"),
      };
      const add = await runChain(plugins(n), eniConf(), cniEnv("ADD", "e0000001", pod));
      assert.equal(add.exitCode, 0, add.stdout);
      const r = add.result as {
        interfaces: Array<{ name: string; mac: string; sandbox?: string }>;
        ips: Array<{ address: string; gateway: string }>;
      };
      const port = podPorts(n)[0]!;
      assert.equal(r.interfaces[0]!.name, "eth0");
      assert.equal(r.interfaces[0]!.mac, port.mac_address);
      assert.equal(r.ips[0]!.address, `${port.fixed_ips[0]!.ip_address}/24`);
      assert.equal(r.ips[0]!.gateway, "10.10.20.1");
      assert.deepEqual(
        r.interfaces.map((i) => i.name),
        ["eth0", r.interfaces[1]!.name, "veth0"],
      );
      const podLinks = (await n.kernel.listLinks(pod)).map((l) => l.name).sort();
      assert.deepEqual(podLinks, ["eth0", "lo", "veth0"]);
      assert.equal((await n.kernel.getLink(pod, "eth0"))?.alias, "ens4", "the original name is kept in the alias");
      const podRoutes = (await n.kernel.listRoutes(pod)).map((x) => `${x.dst} ${x.gw ?? "-"} ${x.dev}`).sort();
      assert.deepEqual(
        podRoutes,
        [
          "0.0.0.0/0 10.10.20.1 eth0",
          "10.10.20.0/24 - eth0",
          "10.10.10.11/32 - veth0",
          "10.96.0.0/12 10.10.10.11 veth0",
        ].sort(),
      );
      assert.deepEqual(
        (await n.kernel.listRoutes(pod, 1000)).map((x) => `${x.dst} ${x.gw} ${x.dev}`),
        ["0.0.0.0/0 10.10.10.11 veth0"],
      );
      const check = await runChain(plugins(n), eniConf(), cniEnv("CHECK", "e0000001", pod), add.result);
      assert.equal(check.exitCode, 0, check.stdout);
      const del = await runChain(plugins(n), eniConf(), cniEnv("DEL", "e0000001", pod), add.result);
      assert.equal(del.exitCode, 0, del.stdout);
      await n.em.settle();
      assert.deepEqual(podPorts(n), [], "the port was detached and deleted");
      assert.deepEqual(
        await n.kernel.listLinks(HOST),
        before.links,
        "the NIC went back and was unplugged; the veth is gone",
      );
      assert.deepEqual(await n.kernel.listRoutes(HOST), before.routes);
      assert.deepEqual(await n.kernel.listIptables(HOST, "nat"), before.nat);
    } finally {
      n.cleanup();
    }
  });

  it("concurrent DELs of pods whose NICs had the same original name (the VM reuses ens4) all succeed", async () => {
    const n = await fakeNode();
    // Each hot-plugged NIC takes the first free ensN, as udev names them: ens4 every time, once the
    // previous one has moved into its pod.
    n.em.hooks = {
      attach: async (_s, port) => n.kernel.addDevice(HOST, { name: "ens4", mac: port.mac_address, mtu: 1450 }),
      detach: async (_s, port) => {
        const l = (await n.kernel.listLinks(HOST)).find((x) => x.mac === port.mac_address);
        if (l !== undefined) await n.kernel.deleteLink(HOST, l.name);
      },
    };
    try {
      const ids = ["e00000a1", "e00000a2", "e00000a3"];
      const adds = [];
      for (const id of ids) {
        const pod = await n.kernel.createNetns(`pod-${id}`);
        const add = await runChain(plugins(n), eniConf(), cniEnv("ADD", id, pod));
        assert.equal(add.exitCode, 0, add.stdout);
        assert.equal((await n.kernel.getLink(pod, "eth0"))?.alias, "ens4");
        adds.push({ id, pod, result: add.result });
      }
      const dels = await Promise.all(
        adds.map((a) => runChain(plugins(n), eniConf(), cniEnv("DEL", a.id, a.pod), a.result)),
      );
      for (const d of dels) assert.equal(d.exitCode, 0, d.stdout);
      await n.em.settle();
      assert.deepEqual(podPorts(n), [], "every pod's port is deleted");
    } finally {
      n.cleanup();
    }
  });

  it("an attach whose NIC never appears times out with a clear error and leaves no port", async () => {
    const n = await eniNode();
    try {
      const pod = await n.kernel.createNetns("pod1");
      n.em.addFault({ kind: "no-nic", remaining: 1 });
      const conf = eniConf();
      ((conf["plugins"] as Array<Record<string, unknown>>)[0]!["ipam"] as Record<string, unknown>)["timeouts"] = {
        nic: 0.3,
      };
      const add = await runChain(plugins(n), conf, cniEnv("ADD", "e0000002", pod));
      assert.equal(add.exitCode, 1);
      assert.equal(JSON.parse(add.stdout).code, 11);
      assert.match(
        JSON.parse(add.stdout).details,
        /no NIC with that MAC appeared in this VM within 0.3 s \(ipam.timeouts.nic\)/,
      );
      await n.em.settle();
      assert.deepEqual(podPorts(n), []);
    } finally {
      n.cleanup();
    }
  });
  // Issue 13 item 6 on the plugin path: a pod's port is detached at DEL but stays in Neutron with its
  // address for the cool-down, so Neutron cannot give that address to a new pod while conntrack on
  // other hosts may still send the old pod's flows to it; once due it is deleted.
  it("a pod's port cools down detached: its address is not given to a new pod, persisted, deleted when due", async () => {
    const seed = nodeSeed();
    // Two free addresses besides the VM's own eni port (.11): .12 and .13.
    seed.networks![1]!.subnets![0]!.allocation_pools = [{ start: "10.10.20.11", end: "10.10.20.13" }];
    const n = await eniNode({ seed });
    try {
      const conf = (cool = 1): Record<string, unknown> => eniConf("1.1.0", cool);
      const pods = await Promise.all(["a", "b", "c"].map((x) => n.kernel.createNetns(`pod-${x}`)));
      const call = (cmd: string, id: string, i: number, prev?: unknown) =>
        runChain(plugins(n), conf(), cniEnv(cmd, id, pods[i]!), prev);
      const ipOf = (r: unknown): string => (r as { ips: Array<{ address: string }> }).ips[0]!.address.split("/")[0]!;
      const nicsInVm = async () => (await n.kernel.listLinks(HOST)).filter((l) => l.name.startsWith("ens")).length;

      const a = await call("ADD", "e0c001a", 0);
      assert.equal(a.exitCode, 0, a.stdout);
      const x = ipOf(a.result);
      const portA = podPorts(n)[0]!;
      assert.equal((await call("DEL", "e0c001a", 0, a.result)).exitCode, 0);
      await n.em.settle();
      const kept = n.em.world.ports[portA.id];
      assert.ok(kept !== undefined, "the port stays in Neutron while it cools down");
      assert.equal(kept.device_id, "", "detached from the VM at DEL");
      assert.deepEqual(
        kept.fixed_ips.map((f) => f.ip_address),
        [x],
      );
      assert.equal(await nicsInVm(), 0, "its NIC left the VM");
      assert.equal(await n.kernel.getLink(pods[0]!, "eth0"), undefined, "the pod's side is gone at once");
      const cooling = readLedger(n.stateDir).filter((r) => r.kind === "cooling" && r.ip === x);
      assert.equal(cooling.length, 1, "persisted as a record of its own");
      assert.equal((await call("DEL", "e0c001a", 0, a.result)).exitCode, 0, "a repeated DEL is a no-op");
      assert.ok(n.em.world.ports[portA.id] !== undefined, "a repeated DEL leaves the cooling port");

      const b = await call("ADD", "e0c001b", 1);
      assert.equal(b.exitCode, 0, b.stdout);
      assert.notEqual(ipOf(b.result), x, "the cooling address is not given to a new pod");
      const full = await call("ADD", "e0c001c", 2);
      assert.equal(JSON.parse(full.stdout).code, 100, `only the cooling address is left: exhausted (${full.stdout})`);
      assert.equal((await call("DEL", "e0c001c", 2)).exitCode, 0);
      const gcEarly = await runChain(
        plugins(n),
        { ...conf(), cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ containerID: "e0c001b", ifname: "eth0" }] },
        { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
      );
      assert.equal(gcEarly.exitCode, 0, gcEarly.stdout);
      assert.ok(n.em.world.ports[portA.id] !== undefined, "GC leaves a port that is still cooling");

      await new Promise((r) => setTimeout(r, 1100));
      // Due now: an ADD that finds the subnet full deletes due ports and tries again.
      const c = await call("ADD", "e0c001c", 2);
      assert.equal(c.exitCode, 0, c.stdout);
      assert.equal(ipOf(c.result), x, "after its cool-down the address serves again");
      assert.equal(n.em.world.ports[portA.id], undefined, "the cooled port was deleted");
      assert.equal((await call("DEL", "e0c001b", 1, b.result)).exitCode, 0);
      assert.equal((await call("DEL", "e0c001c", 2, c.result)).exitCode, 0);
      await new Promise((r) => setTimeout(r, 1100));
      const gc = await runChain(
        plugins(n),
        { ...conf(), "cni.dev/valid-attachments": [] },
        { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
      );
      assert.equal(gc.exitCode, 0, gc.stdout);
      await n.em.settle();
      assert.deepEqual(podPorts(n), [], "GC deletes due ports");
      assert.deepEqual(readLedger(n.stateDir), [], "no record is left");
    } finally {
      n.cleanup();
    }
  });
  it("a DEL whose detach fails stays pending with its cool-down: the repeated DEL detaches and keeps the port", async () => {
    const n = await eniNode();
    try {
      const conf = eniConf("1.1.0", 30);
      const pod = await n.kernel.createNetns("pod-a");
      const add = await runChain(plugins(n), conf, cniEnv("ADD", "e0c002a", pod));
      assert.equal(add.exitCode, 0, add.stdout);
      const port = podPorts(n)[0]!;
      n.em.addFault({ kind: "error", service: "compute", method: "DELETE", status: 500 });
      const failed = await runChain(plugins(n), conf, cniEnv("DEL", "e0c002a", pod), add.result);
      assert.equal(JSON.parse(failed.stdout).code, 11, `Nova's detach failing: try again later (${failed.stdout})`);
      const pending = readLedger(n.stateDir).find((r) => r.kind === "intent")!;
      assert.ok(pending.kind === "intent" && pending.op === "release", "pending release");
      assert.ok(pending.coolUntil !== undefined && pending.coolUntil > Date.now() + 20_000, "with its cool-down");
      n.em.clearFaults();
      const again = await runChain(plugins(n), conf, cniEnv("DEL", "e0c002a", pod), add.result);
      assert.equal(again.exitCode, 0, again.stdout);
      await n.em.settle();
      const kept = n.em.world.ports[port.id];
      assert.ok(kept !== undefined, "the port is kept for the rest of its cool-down, not deleted");
      assert.equal(kept.device_id, "", "detached");
      const records = readLedger(n.stateDir);
      assert.deepEqual(
        records.map((r) => `${r.kind} ${r.ip}`),
        [`cooling ${port.fixed_ips[0]!.ip_address}`],
      );
      const cooling = records[0] as { coolUntil: number };
      assert.equal(cooling.coolUntil, pending.coolUntil, "the cool-down given at the first DEL, not a new one");
    } finally {
      n.cleanup();
    }
  });
});
