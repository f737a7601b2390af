// The gratuitous ARP that announces an address really leaves the interface: a neighbour on the
// other end that had a stale entry for the address learns the announcing interface's MAC.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { NetlinkKernel } from "../../src/kernel/netlink-kernel.js";
import { addNetns, cleanupNamespaces, nsExec } from "../helpers/namespaces.js";
import { rootSkipReason } from "../helpers/root.js";

const skip = rootSkipReason();

describe("gratuitous ARP", { skip: skip ?? false }, () => {
  after(() => cleanupNamespaces());
  it("updates a stale neighbour entry on the other side", async () => {
    const k = await NetlinkKernel.create();
    try {
      const a = addNetns("garpa");
      const b = addNetns("garpb");
      await k.createVeth(a.path, { name: "va", mac: "02:00:00:aa:00:01", peer: { name: "vb", netns: b.path } });
      await k.setLink(a.path, "va", { up: true });
      await k.setLink(b.path, "vb", { up: true });
      await k.addAddress(b.path, { cidr: "10.77.0.2/24", dev: "vb" });
      nsExec(b.name, ["ip", "neigh", "replace", "10.77.0.9", "lladdr", "02:00:00:00:00:99", "nud", "stale", "dev", "vb"]);
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
});
