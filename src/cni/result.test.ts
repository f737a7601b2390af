import { test } from "node:test";
import assert from "node:assert/strict";
import { formatResult, parseResult, type CniResult } from "./result.js";
import { SUPPORTED_VERSIONS, compareVersions } from "./version.js";

const full: CniResult = {
  interfaces: [
    { name: "veth1234", mac: "aa:bb:cc:dd:ee:ff" },
    { name: "eth0", mac: "fa:16:3e:00:00:01", mtu: 1450, sandbox: "/var/run/netns/cni-1", pciID: "0000:00:07.0" },
  ],
  ips: [
    { address: "10.0.0.23/24", gateway: "10.0.0.1", interface: 1 },
    { address: "fd00::23/64", interface: 1 },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "10.0.0.1" },
    { dst: "10.96.0.0/12", gw: "169.254.1.1", table: 100, scope: 0, priority: 10 },
  ],
  dns: { nameservers: ["10.0.0.2"], search: ["svc.cluster.local"] },
};

// What survives a trip through version v: fields that v can express.
function projected(r: CniResult, v: string): CniResult {
  const v11 = compareVersions(v, "1.1.0") >= 0;
  return {
    interfaces: r.interfaces.map((i) => {
      const o: CniResult["interfaces"][number] = { name: i.name };
      if (i.mac !== undefined) o.mac = i.mac;
      if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
      if (i.sandbox !== undefined) o.sandbox = i.sandbox;
      if (v11 && i.pciID !== undefined) o.pciID = i.pciID;
      return o;
    }),
    ips: r.ips,
    routes: r.routes.map((rt) => (v11 ? rt : rt.gw === undefined ? { dst: rt.dst } : { dst: rt.dst, gw: rt.gw })),
    ...(r.dns === undefined ? {} : { dns: r.dns }),
  };
}

for (const from of SUPPORTED_VERSIONS) {
  for (const to of SUPPORTED_VERSIONS) {
    test(`result converts from ${from} to ${to}`, () => {
      const wire1 = JSON.parse(JSON.stringify(formatResult(full, from)));
      assert.equal(wire1.cniVersion, from);
      const wire2 = JSON.parse(JSON.stringify(formatResult(parseResult(wire1), to)));
      assert.equal(wire2.cniVersion, to);
      const legacy = compareVersions(to, "1.0.0") < 0;
      for (const ip of wire2.ips) assert.equal("version" in ip, legacy, `ips[].version presence in ${to}`);
      if (legacy)
        assert.deepEqual(
          wire2.ips.map((i: { version: string }) => i.version),
          ["4", "6"],
        );
      const lowest = compareVersions(from, to) < 0 ? from : to;
      assert.deepEqual(parseResult(wire2), projected(full, lowest));
    });
  }
}

test("formatResult omits empty lists and dns, as libcni does", () => {
  assert.deepEqual(formatResult({ interfaces: [], ips: [], routes: [] }, "1.0.0"), { cniVersion: "1.0.0" });
});

test("parseResult rejects legacy 0.2.0 results and malformed fields with code 6", () => {
  assert.throws(() => parseResult({ ip4: { ip: "10.0.0.1/24" } }), { code: 6 });
  assert.throws(() => parseResult({ ips: [{ address: "10.0.0.1" }] }), { code: 6, message: /CIDR/ });
  assert.throws(() => parseResult({ ips: "x" }), { code: 6 });
  assert.throws(() => parseResult({ routes: [{ gw: "1.2.3.4" }] }), { code: 6, message: /routes\[0\]\.dst/ });
});

test("parseResult accepts a CRI DEL prevResult with ips: null", () => {
  assert.deepEqual(parseResult({ cniVersion: "1.0.0", ips: null, interfaces: [{ name: "eth0" }] }), {
    interfaces: [{ name: "eth0" }],
    ips: [],
    routes: [],
  });
});
