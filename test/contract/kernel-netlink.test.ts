import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { NetlinkKernel } from "../../src/kernel/netlink-kernel.js";
import { addNetns, cleanupNamespaces, nsExec } from "../helpers/namespaces.js";
import { rootSkipReason } from "../helpers/root.js";
import { kernelContract } from "./kernel-contract.js";

const skip = rootSkipReason("iptables-restore");
kernelContract(
  "NetlinkKernel (real kernel, throwaway namespaces)",
  async () => {
    const kernel = await NetlinkKernel.create();
    return {
      kernel,
      netns: async (tag) => addNetns(tag).path,
      cleanup: async () => {
        kernel.close();
        cleanupNamespaces();
      },
    };
  },
  skip === undefined ? {} : { skip },
);

// The index cache: a link deleted and made again by someone else (a plugin process, an operator)
// under the same name is still the one an operation by name reaches.
describe("NetlinkKernel: links made again behind its back", { skip: skip ?? false }, () => {
  after(() => cleanupNamespaces());
  it("reaches the new link by name, not the old one's index", async () => {
    const k = await NetlinkKernel.create({ longLived: true });
    try {
      const a = addNetns("ixa");
      const b = addNetns("ixb");
      await k.createVeth(a.path, { name: "vx", peer: { name: "vy", netns: b.path } });
      await k.setLink(a.path, "vx", { up: true });
      await k.addAddress(a.path, { cidr: "10.78.0.1/32", dev: "vx" });
      const old = (await k.getLink(a.path, "vx"))!.index;
      nsExec(a.name, ["ip", "link", "del", "vx"]);
      nsExec(a.name, ["ip", "link", "add", "vx", "type", "veth", "peer", "name", "vz"]);
      await k.setLink(a.path, "vx", { up: true, mtu: 1400 });
      await k.addAddress(a.path, { cidr: "10.78.0.2/32", dev: "vx" });
      await k.addRoute(a.path, { dst: "10.78.1.0/24", dev: "vx" });
      await k.setNeighbour(a.path, { dev: "vx", ip: "10.78.0.9", proxy: true });
      const now = (await k.getLink(a.path, "vx"))!;
      assert.notEqual(now.index, old);
      assert.equal(now.mtu, 1400);
      assert.deepEqual(
        (await k.listAddresses(a.path, "vx")).map((x) => x.cidr),
        ["10.78.0.2/32"],
      );
      assert.ok((await k.listRoutes(a.path)).some((r) => r.dst === "10.78.1.0/24" && r.dev === "vx"));
      assert.ok((await k.listNeighbours(a.path, { proxy: true })).some((n) => n.ip === "10.78.0.9" && n.dev === "vx"));
    } finally {
      k.close();
    }
  });
});
