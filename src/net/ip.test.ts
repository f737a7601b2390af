import { test } from "node:test";
import assert from "node:assert/strict";
import {
  aggregate,
  broadcastOf,
  cidrContains,
  cidrCovers,
  formatCidr,
  formatIp,
  ipBytes,
  ipFromBytes,
  networkOf,
  normaliseIp,
  parseCidr,
  parseIp,
  tryParseCidr,
  tryParseIp,
} from "./ip.js";

test("IPv4 parse/format round-trips and rejects malformed input", () => {
  for (const s of ["0.0.0.0", "10.10.20.53", "255.255.255.255", "169.254.169.254"])
    assert.equal(formatIp(parseIp(s)), s);
  for (const s of ["10.0.0", "10.0.0.256", "010.0.0.1", "a.b.c.d", "10.0.0.1.2", ""])
    assert.equal(tryParseIp(s), undefined, s);
});

test("IPv6 parse/format follows RFC 5952 compression", () => {
  assert.equal(normaliseIp("FD00:0:0:0:0:0:0:1"), "fd00::1");
  assert.equal(normaliseIp("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  assert.equal(normaliseIp("::"), "::");
  assert.equal(normaliseIp("::ffff:10.0.0.1"), "::ffff:a00:1");
  assert.equal(tryParseIp("1::2::3"), undefined);
  assert.equal(tryParseIp("1:2:3:4:5:6:7:8:9"), undefined);
});

test("CIDR math: network, broadcast, containment", () => {
  const c = parseCidr("10.10.20.53/24");
  assert.equal(formatCidr(networkOf(c)), "10.10.20.0/24");
  assert.equal(formatIp(broadcastOf(c)), "10.10.20.255");
  assert.ok(cidrContains(c, parseIp("10.10.20.1")));
  assert.ok(!cidrContains(c, parseIp("10.10.21.1")));
  assert.ok(
    !cidrContains(parseCidr("169.254.1.1/32"), parseIp("169.254.169.254")),
    "a /32 never captures the metadata address",
  );
  assert.ok(cidrCovers(parseCidr("10.0.0.0/8"), parseCidr("10.10.0.0/16")));
  assert.ok(!cidrCovers(parseCidr("10.10.0.0/16"), parseCidr("10.0.0.0/8")));
  assert.equal(tryParseCidr("10.0.0.0/33"), undefined);
  assert.equal(tryParseCidr("10.0.0.0"), undefined);
});

test("bytes round-trip for netlink", () => {
  assert.deepEqual([...ipBytes(parseIp("10.1.2.3"))], [10, 1, 2, 3]);
  assert.equal(formatIp(ipFromBytes(ipBytes(parseIp("fd00::5")))), "fd00::5");
});

test("aggregate collapses exactly-covered aligned blocks", () => {
  const ips = (...s: string[]) => s.map(parseIp);
  assert.deepEqual(aggregate(ips("10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3")).map(formatCidr), ["10.0.0.0/30"]);
  assert.deepEqual(aggregate(ips("10.0.0.1", "10.0.0.2")).map(formatCidr), ["10.0.0.1/32", "10.0.0.2/32"]);
  assert.deepEqual(aggregate(ips("10.0.0.4", "10.0.0.5", "10.0.0.7")).map(formatCidr), ["10.0.0.4/31", "10.0.0.7/32"]);
  const all16 = Array.from({ length: 16 }, (_, i) => `10.0.1.${16 + i}`);
  assert.deepEqual(aggregate(ips(...all16)).map(formatCidr), ["10.0.1.16/28"]);
  assert.deepEqual(aggregate(ips(...all16), 30).map(formatCidr), [
    "10.0.1.16/30",
    "10.0.1.20/30",
    "10.0.1.24/30",
    "10.0.1.28/30",
  ]);
  assert.deepEqual(aggregate([]), []);
});
