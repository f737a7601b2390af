// The gratuitous ARP that announces an address really leaves the interface: a neighbour on the
// other end that had a stale entry for the address learns the announcing interface's MAC.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { applyPlan, type Step } from "../../src/kernel/plan.js";
import { HOST } from "../../src/kernel/types.js";
import { NetlinkKernel } from "../../src/kernel/netlink-kernel.js";
import { planMoveIn } from "../../src/plugins/host-device/plan.js";
import { addNetns, cleanupNamespaces, nsExec } from "../helpers/namespaces.js";
import { rootSkipReason } from "../helpers/root.js";

const skip = rootSkipReason();

describe("gratuitous ARP", { skip: skip ?? false }, () => {
  after(() => cleanupNamespaces());
  for (const longLived of [false, true])
    it(`updates a stale neighbour entry on the other side (sent by ${longLived ? "a thread: the agent" : "a grandchild: a plugin process"})`, async () => {
      const k = await NetlinkKernel.create({ longLived });
      try {
        const a = addNetns(`garpa${longLived ? "t" : ""}`);
        const b = addNetns(`garpb${longLived ? "t" : ""}`);
        await k.createVeth(a.path, { name: "va", mac: "02:00:00:aa:00:01", peer: { name: "vb", netns: b.path } });
        await k.setLink(a.path, "va", { up: true });
        await k.setLink(b.path, "vb", { up: true });
        await k.addAddress(b.path, { cidr: "10.77.0.2/24", dev: "vb" });
        nsExec(b.name, [
          "ip",
          "neigh",
          "replace",
          "10.77.0.9",
          "lladdr",
          "02:00:00:00:00:99",
          "nud",
          "stale",
          "dev",
          "vb",
        ]);
        await k.announce(a.path, "va", "10.77.0.9");
        let mac: string | undefined;
        for (let i = 0; i < 50 && mac !== "02:00:00:aa:00:01"; i++) {
          await new Promise((r) => setTimeout(r, 20));
          mac = (await k.listNeighbours(b.path)).find((n) => n.ip === "10.77.0.9")?.mac;
        }
        assert.equal(mac, "02:00:00:aa:00:01");
      } finally {
        k.close();
      }
    });

  it("host-device's move-in makes the kernel announce the pod's address (arp_notify), once", async () => {
    const k = await NetlinkKernel.create();
    try {
      const vm = addNetns("garpvm");
      const pod = addNetns("garppod");
      const wire = addNetns("garpwire");
      await k.createVeth(vm.path, { name: "ens4", mac: "02:00:00:bb:00:04", peer: { name: "tap", netns: wire.path } });
      await k.setLink(wire.path, "tap", { up: true });
      await k.addAddress(wire.path, { cidr: "10.77.1.1/24", dev: "tap" });
      nsExec(wire.name, [
        "ip",
        "neigh",
        "replace",
        "10.77.1.9",
        "lladdr",
        "02:00:00:00:00:99",
        "nud",
        "stale",
        "dev",
        "tap",
      ]);
      // The plan's "host" is the VM: run it with the VM's namespace in that place (never this machine's).
      const steps = planMoveIn({
        device: "ens4",
        mac: "02:00:00:bb:00:04",
        linkMtu: 1500,
        tempName: "tmp0",
        podNetns: pod.path,
        podIfname: "eth0",
        ips: [{ address: "10.77.1.9/24", gateway: "10.77.1.1" }],
        routes: [],
      }).map((s): Step => (s.ns === HOST ? { ...s, ns: vm.path } : s));
      assert.equal(steps.filter((s) => s.op === "announce").length, 0, "no second announcement from user space");
      await applyPlan(k, steps);
      let mac: string | undefined;
      for (let i = 0; i < 50 && mac !== "02:00:00:bb:00:04"; i++) {
        await new Promise((r) => setTimeout(r, 20));
        mac = (await k.listNeighbours(wire.path)).find((n) => n.ip === "10.77.1.9")?.mac;
      }
      assert.equal(mac, "02:00:00:bb:00:04", "the neighbour learnt the NIC's MAC when it came up in the pod");
    } finally {
      k.close();
    }
  });
});
