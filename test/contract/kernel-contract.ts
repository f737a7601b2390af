// One contract for every Kernel adapter: the fake passes it in memory, NetlinkKernel in throwaway
// namespaces as root. Only behaviour tcnp relies on is asserted.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { isKernelError, type Kernel, type Netns } from "../../src/kernel/types.js";

export interface KernelHarness {
  kernel: Kernel;
  /** A fresh namespace for this test. */
  netns(tag: string): Promise<Netns>;
  cleanup(): Promise<void>;
}

const rejectsWith = async (p: Promise<unknown>, errno: string): Promise<void> => {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isKernelError(e), `expected a KernelError, got ${String(e)}`);
    assert.equal(e.errno, errno);
    return true;
  });
};

export function kernelContract(
  adapter: string,
  make: () => Promise<KernelHarness>,
  opts: { skip?: string } = {},
): void {
  describe(`Kernel contract: ${adapter}`, { skip: opts.skip ?? false }, () => {
    let h: KernelHarness;
    let k: Kernel;
    before(async () => {
      h = await make();
      k = h.kernel;
    });
    after(async () => {
      await h?.cleanup();
    });

    async function pair(): Promise<{ host: Netns; pod: Netns }> {
      const host = await h.netns("h");
      const pod = await h.netns("p");
      await k.createVeth(host, {
        name: "vh",
        mac: "02:00:00:00:01:01",
        mtu: 1450,
        peer: { name: "eth0", netns: pod, mac: "02:00:00:00:01:02", mtu: 1450 },
      });
      return { host, pod };
    }

    it("creates a veth with its peer directly in another namespace", async () => {
      const { host, pod } = await pair();
      const hl = await k.getLink(host, "vh");
      const pl = await k.getLink(pod, "eth0");
      assert.equal(hl?.kind, "veth");
      assert.equal(hl?.mac, "02:00:00:00:01:01");
      assert.equal(hl?.mtu, 1450);
      assert.equal(pl?.mac, "02:00:00:00:01:02");
      assert.equal(pl?.mtu, 1450);
      assert.equal(hl?.peerIndex, pl?.index);
      assert.equal(hl?.peerInOtherNetns, true);
      assert.equal(await k.getLink(host, "eth0"), undefined);
      await rejectsWith(k.createVeth(host, { name: "vh", peer: { name: "x1", netns: pod } }), "EEXIST");
    });

    it("changes name, alias, MTU, MAC and state, and finds links by MAC", async () => {
      const { host } = await pair();
      await k.setLink(host, "vh", { name: "vh2", alias: "orig-name", mtu: 1400, mac: "02:00:00:00:09:09", up: true });
      const l = await k.getLink(host, "vh2");
      assert.equal(l?.alias, "orig-name");
      assert.equal(l?.mtu, 1400);
      assert.equal(l?.up, true);
      const byMac = (await k.listLinks(host)).find((x) => x.mac === "02:00:00:00:09:09");
      assert.equal(byMac?.name, "vh2");
      await k.setLink(host, "vh2", { up: false });
      assert.equal((await k.getLink(host, "vh2"))?.up, false);
      await rejectsWith(k.setLink(host, "nope", { up: true }), "ENODEV");
    });

    it("moves a link into another namespace under a new name, leaving it down", async () => {
      const { host, pod } = await pair();
      const third = await h.netns("t");
      await k.setLink(pod, "eth0", { up: true });
      await k.moveLink(pod, "eth0", third, "moved0");
      assert.equal(await k.getLink(pod, "eth0"), undefined);
      const m = await k.getLink(third, "moved0");
      assert.equal(m?.mac, "02:00:00:00:01:02");
      assert.equal(m?.up, false);
      await k.createVeth(third, { name: "taken", peer: { name: "taken-p", netns: third } });
      await rejectsWith(k.moveLink(host, "vh", third, "taken"), "EEXIST");
    });

    it("deletes a veth with its peer, and reports a missing link as false", async () => {
      const { host, pod } = await pair();
      assert.equal(await k.deleteLink(host, "vh"), true);
      assert.equal(await k.getLink(pod, "eth0"), undefined);
      assert.equal(await k.deleteLink(host, "vh"), false);
    });

    it("adds /32 and noprefixroute addresses; a /24 brings its connected route once up", async () => {
      const { pod } = await pair();
      await k.addAddress(pod, { cidr: "10.9.0.5/24", dev: "eth0" });
      await k.addAddress(pod, { cidr: "10.8.0.5/32", dev: "eth0" });
      await k.addAddress(pod, { cidr: "10.7.0.5/24", dev: "eth0", noprefixroute: true });
      assert.equal((await k.listRoutes(pod)).filter((r) => r.dev === "eth0").length, 0, "no routes while down");
      await k.setLink(pod, "eth0", { up: true });
      const routes = await k.listRoutes(pod);
      const connected = routes.filter((r) => r.proto === "kernel");
      assert.deepEqual(
        connected.map((r) => [r.dst, r.dev, r.scope, r.src]),
        [["10.9.0.0/24", "eth0", "link", "10.9.0.5"]],
      );
      const addrs = (await k.listAddresses(pod, "eth0"))
        .filter((a) => !a.cidr.includes(":"))
        .map((a) => [a.cidr, a.noprefixroute === true]);
      assert.deepEqual(addrs.sort(), [
        ["10.7.0.5/24", true],
        ["10.8.0.5/32", false],
        ["10.9.0.5/24", false],
      ]);
      await rejectsWith(k.addAddress(pod, { cidr: "10.8.0.5/32", dev: "eth0" }), "EEXIST");
      assert.equal(await k.deleteAddress(pod, { cidr: "10.8.0.5/32", dev: "eth0" }), true);
      assert.equal(await k.deleteAddress(pod, { cidr: "10.8.0.5/32", dev: "eth0" }), false);
    });

    it("adds scope-link, gateway, onlink and table routes; rejects duplicates and unreachable gateways", async () => {
      const { host, pod } = await pair();
      await k.setLink(pod, "eth0", { up: true });
      await k.setLink(host, "vh", { up: true });
      await k.addAddress(pod, { cidr: "10.1.1.5/32", dev: "eth0" });
      await rejectsWith(k.addRoute(pod, { dst: "0.0.0.0/0", gw: "169.254.1.1", dev: "eth0" }), "ENETUNREACH");
      await k.addRoute(pod, { dst: "169.254.1.1/32", dev: "eth0", scope: "link" });
      await k.addRoute(pod, { dst: "0.0.0.0/0", gw: "169.254.1.1", dev: "eth0" });
      await k.addRoute(pod, { dst: "10.96.0.0/12", gw: "10.1.1.1", dev: "eth0", onlink: true, table: 1000 });
      await k.addRoute(host, { dst: "10.1.1.5/32", dev: "vh", scope: "global" });
      await rejectsWith(k.addRoute(pod, { dst: "169.254.1.1/32", dev: "eth0", scope: "link" }), "EEXIST");
      const main = (await k.listRoutes(pod)).map((r) => [r.dst, r.gw ?? "", r.dev, r.scope]).sort();
      assert.deepEqual(main, [
        ["0.0.0.0/0", "169.254.1.1", "eth0", "global"],
        ["169.254.1.1/32", "", "eth0", "link"],
      ]);
      const t = await k.listRoutes(pod, 1000);
      assert.deepEqual(
        t.map((r) => [r.dst, r.gw, r.onlink, r.table]),
        [["10.96.0.0/12", "10.1.1.1", true, 1000]],
      );
      assert.equal((await k.listRoutes(pod, "all")).length, 3);
      assert.deepEqual(
        (await k.listRoutes(host)).map((r) => [r.dst, r.dev, r.scope]),
        [["10.1.1.5/32", "vh", "global"]],
      );
      await k.replaceRoute(pod, { dst: "0.0.0.0/0", gw: "10.1.1.1", dev: "eth0", onlink: true });
      assert.equal((await k.listRoutes(pod)).find((r) => r.dst === "0.0.0.0/0")?.gw, "10.1.1.1");
      assert.equal(await k.deleteRoute(pod, { dst: "10.96.0.0/12", table: 1000 }), true);
      assert.equal(await k.deleteRoute(pod, { dst: "10.96.0.0/12", table: 1000 }), false);
      await rejectsWith(k.addRoute(host, { dst: "10.2.0.0/24", dev: "lo" }), "ENETDOWN");
      await k.deleteLink(host, "vh");
      assert.deepEqual(await k.listRoutes(host), [], "routes go with their device");
    });

    it("adds and deletes policy rules, which outlive their device", async () => {
      const { host } = await pair();
      await k.addRule(host, { priority: 1024, table: 596, iif: "vh" });
      await k.addRule(host, { priority: 512, table: 254, fwmark: 0x2000, fwmask: 0x2000 });
      await k.addRule(host, { priority: 1536, table: 100, src: "10.1.1.5/32" });
      await rejectsWith(k.addRule(host, { priority: 1024, table: 596, iif: "vh" }), "EEXIST");
      await k.deleteLink(host, "vh");
      const rules = (await k.listRules(host)).map(
        (r) => `${r.priority}:${r.table}:${r.iif ?? ""}:${r.src ?? ""}:${r.fwmark ?? ""}/${r.fwmask ?? ""}`,
      );
      assert.deepEqual(
        rules.sort(),
        [
          "0:255:::/",
          "1024:596:vh::/",
          "1536:100::10.1.1.5/32:/",
          "32766:254:::/",
          "32767:253:::/",
          "512:254:::8192/8192",
        ].sort(),
      );
      assert.equal(await k.deleteRule(host, { priority: 1024, table: 596, iif: "vh" }), true);
      assert.equal(await k.deleteRule(host, { priority: 1024, table: 596, iif: "vh" }), false);
    });

    it("sets permanent and proxy neighbours, replaces and deletes them", async () => {
      const { host, pod } = await pair();
      await k.setLink(pod, "eth0", { up: true });
      await k.setNeighbour(pod, { dev: "eth0", ip: "169.254.1.1", mac: "02:00:00:00:01:01", permanent: true });
      await k.setNeighbour(pod, { dev: "eth0", ip: "169.254.1.1", mac: "02:00:00:00:01:03", permanent: true });
      await k.setNeighbour(host, { dev: "vh", ip: "10.1.1.77", proxy: true });
      const n = (await k.listNeighbours(pod)).filter((x) => x.ip === "169.254.1.1");
      assert.deepEqual(n, [{ dev: "eth0", ip: "169.254.1.1", mac: "02:00:00:00:01:03", permanent: true }]);
      assert.deepEqual(await k.listNeighbours(host, { proxy: true }), [{ dev: "vh", ip: "10.1.1.77", proxy: true }]);
      assert.equal(
        (await k.listNeighbours(host)).some((x) => x.ip === "10.1.1.77"),
        false,
        "proxy entries are listed apart",
      );
      assert.equal(await k.deleteNeighbour(host, { dev: "vh", ip: "10.1.1.77", proxy: true }), true);
      assert.equal(await k.deleteNeighbour(host, { dev: "vh", ip: "10.1.1.77", proxy: true }), false);
      await rejectsWith(k.setNeighbour(host, { dev: "nope", ip: "10.1.1.1", mac: "02:00:00:00:00:01" }), "ENODEV");
    });

    it("reads and writes sysctls per namespace and per interface", async () => {
      const { host, pod } = await pair();
      k.writeSysctl(host, "net.ipv4.conf.vh.proxy_arp", "1");
      assert.equal(k.readSysctl(host, "net/ipv4/conf/vh/proxy_arp"), "1");
      assert.equal(k.readSysctl(pod, "net.ipv4.conf.eth0.proxy_arp"), "0");
      k.writeSysctl(pod, "net.ipv4.ip_forward", "1");
      assert.equal(k.readSysctl(pod, "net.ipv4.ip_forward"), "1");
      assert.equal(k.readSysctl(host, "net.ipv4.ip_forward"), "0");
      assert.equal(k.readSysctl(host, "net.ipv4.conf.nope.proxy_arp"), undefined);
      assert.throws(
        () => k.writeSysctl(host, "net.ipv4.conf.nope.proxy_arp", "1"),
        (e: unknown) => isKernelError(e, "ENOENT"),
      );
    });

    it("applies an iptables rule set atomically and idempotently, and removes it", async () => {
      const { host } = await pair();
      const set = {
        chains: [{ table: "nat" as const, name: "TCNP-TEST1", rules: ["-d 10.1.1.5/32 -j ACCEPT", "-j MASQUERADE"] }],
        jumps: [
          {
            table: "nat" as const,
            chain: "POSTROUTING",
            rule: `-s 10.1.1.5/32 -m comment --comment "tcnp:test" -j TCNP-TEST1`,
          },
        ],
      };
      await k.applyIptables(host, set);
      await k.applyIptables(host, set);
      const nat = await k.listIptables(host, "nat");
      assert.deepEqual(nat.get("TCNP-TEST1"), set.chains[0]!.rules);
      assert.deepEqual(nat.get("POSTROUTING"), [set.jumps[0]!.rule], "re-applying adds no duplicate jump");
      await k.deleteIptables(host, set);
      await k.deleteIptables(host, set);
      const after = await k.listIptables(host, "nat");
      assert.equal(after.has("TCNP-TEST1"), false);
      assert.deepEqual(after.get("POSTROUTING"), []);
    });

    it("reports a missing namespace as ENOENT_NETNS", async () => {
      await rejectsWith(k.listLinks("/var/run/netns/tcnp-does-not-exist"), "ENOENT_NETNS");
      assert.equal(k.netnsExists("/var/run/netns/tcnp-does-not-exist"), false);
    });

    it("creates bridges and enslaves links; dummy links either work or fail with ENOTSUP", async () => {
      const { host } = await pair();
      await k.createLink(host, { name: "br0", kind: "bridge" });
      await k.setLink(host, "vh", { master: "br0" });
      const br = await k.getLink(host, "br0");
      assert.equal(br?.kind, "bridge");
      assert.equal((await k.getLink(host, "vh"))?.master, br?.index);
      try {
        await k.createLink(host, { name: "dummy0", kind: "dummy" });
        assert.equal((await k.getLink(host, "dummy0"))?.kind, "dummy");
      } catch (e) {
        assert.ok(isKernelError(e, "ENOTSUP") || isKernelError(e, "EOPNOTSUPP"), String(e));
      }
    });

    it("answers many concurrent requests on one namespace consistently", async () => {
      const { host } = await pair();
      const dumps = await Promise.all(
        Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? k.listLinks(host) : k.listRoutes(host, "all"))),
      );
      const links = dumps.filter((_, i) => i % 2 === 0).map((d) => JSON.stringify(d));
      assert.equal(new Set(links).size, 1);
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => k.setNeighbour(host, { dev: "vh", ip: `10.5.0.${i + 1}`, proxy: true })),
      );
      assert.equal((await k.listNeighbours(host, { proxy: true })).length, 10);
    });

    it("tells namespaces apart by identity", async () => {
      const a = await h.netns("a");
      const b = await h.netns("b");
      assert.notEqual(k.netnsId(a), k.netnsId(b));
      assert.equal(k.netnsId(a), k.netnsId(a));
    });
  });
}
