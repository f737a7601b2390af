// The pieces of the e2e harness that decide what a run reports: the JUnit reading (pass, fail with
// what failed, skip with why) and the lab cluster's DNS answers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { answer, lookup } from "../helpers/cluster-dns.js";
import { parseJunit, SUITES } from "../helpers/e2e-run.js";

test("parseJunit: passed, failed with the line that says what failed, skipped with the reason", () => {
  const xml = [
    `<testcase name="[sig-network] Services should serve a basic endpoint from pods  [Conformance]" classname="Kubernetes e2e suite" time="10.5"></testcase>`,
    `<testcase name="[sig-network] Networking Granular Checks: Pods should function for node-pod communication: udp [LinuxOnly] [NodeConformance] [Conformance]" classname="Kubernetes e2e suite" time="93"><failure type="Failure">k8s.io/kubernetes/test/e2e/framework/framework.go:629&#xA;Dec  2 18:55:00.474: Error dialing UDP from node to pod: failed to find expected endpoints, &#xA;tries 34</failure></testcase>`,
    `<testcase name="[sig-network] Networking Granular Checks: Pods should function for intra-pod communication: sctp [LinuxOnly][Feature:SCTPConnectivity][Disruptive]" classname="Kubernetes e2e suite" time="0"><skipped></skipped></testcase>`,
    `<testcase name="[sig-storage] unrelated" classname="Kubernetes e2e suite" time="0"><skipped></skipped></testcase>`,
  ].join("\n");
  const rows = parseJunit(xml, "", SUITES.ci, "mix");
  assert.deepEqual(
    rows.map((r) => [r.result, r.reason]),
    [
      ["skipped", "this kernel has no SCTP sockets"],
      ["failed", "Error dialing UDP from node to pod: failed to find expected endpoints,"],
      ["passed", ""],
    ],
  );
});

test("the NetworkPolicy test that probes TCP against an SCTP-only policy is not skipped for want of SCTP", () => {
  const name =
    "[sig-network] NetworkPolicy [LinuxOnly] NetworkPolicy between server and client should not allow access by TCP when a policy specifies only SCTP [Feature:NetworkPolicy] [Feature:SCTP]";
  // (time 0: what a left-out test reports; a skip pattern matching it would make it "skipped")
  const xml = `<testcase name="${name}" classname="Kubernetes e2e suite" time="0"></testcase>`;
  assert.equal(parseJunit(xml, "", SUITES.policy, "mix")[0]?.result, "passed");
});

test("cluster DNS: Services by ClusterIP, headless ones by endpoints, endpoint host names, pods; NXDOMAIN else", () => {
  const svcs = new Map([
    ["ns1/web", { ns: "ns1", name: "web", clusterIp: "10.96.0.10" }],
    ["ns1/hl", { ns: "ns1", name: "hl", clusterIp: "None" }],
  ]);
  const eps = new Map([
    ["ns1/hl", { ns: "ns1", name: "hl", addrs: [{ ip: "10.10.10.5", hostname: "h0" }, { ip: "10.10.10.6" }] }],
  ]);
  const find = (n: string): string[] | undefined =>
    lookup(
      n,
      (k) => svcs.get(k),
      (k) => eps.get(k),
    );
  assert.deepEqual(find("web.ns1.svc.cluster.local"), ["10.96.0.10"]);
  assert.deepEqual(find("WEB.ns1.svc.cluster.local."), ["10.96.0.10"]);
  assert.deepEqual(find("hl.ns1.svc.cluster.local"), ["10.10.10.5", "10.10.10.6"]);
  assert.deepEqual(find("h0.hl.ns1.svc.cluster.local"), ["10.10.10.5"]);
  assert.deepEqual(find("10-10-10-7.ns1.pod.cluster.local"), ["10.10.10.7"]);
  assert.equal(find("web.ns2.svc.cluster.local"), undefined);
  assert.equal(find("web.ns1"), undefined);
  // A query for web.ns1.svc.cluster.local, type A: one answer with the ClusterIP.
  const q = Buffer.concat([
    Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
    ...["web", "ns1", "svc", "cluster", "local"].map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0, 0, 1, 0, 1]),
  ]);
  const r = answer(q, find)!;
  assert.equal(r.readUInt16BE(0), 0x1234);
  assert.equal(r[3]! & 0x0f, 0);
  assert.equal(r.readUInt16BE(6), 1);
  assert.deepEqual([...r.subarray(r.length - 4)], [10, 96, 0, 10]);
  const nx = answer(Buffer.concat([q.subarray(0, 13), Buffer.from("wex"), q.subarray(16)]), find)!;
  assert.equal(nx[3]! & 0x0f, 3);
});
