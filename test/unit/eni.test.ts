// eni mode logic against the emulator and the fake kernel: the seed conflist (host-device with
// tcnp-ipam, then veth-host), with Nova's hot-plug simulated in the fake kernel.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HOST } from "../../src/kernel/types.js";
import { createHostDevice } from "../../src/plugins/host-device/plugin.js";
import { createVethHost } from "../../src/plugins/veth-host/plugin.js";
import { runChain } from "../helpers/chain.js";
import { cniEnv, ENI_NET, fakeNode, type FakeNode } from "../helpers/fake-node.js";

const eniConf = (v = "0.4.0"): Record<string, unknown> => ({
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

async function eniNode(): Promise<FakeNode> {
  const n = await fakeNode();
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
});
