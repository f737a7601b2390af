import { test } from "node:test";
import assert from "node:assert/strict";
import { parseNetConf } from "./netconf.js";

const conf = (o: Record<string, unknown>) => JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "t", ...o });

test("bad JSON is code 6", () => {
  assert.throws(() => parseNetConf("{", "ADD"), { code: 6, message: /Cannot decode network configuration/ });
  // A malformed configuration's text is never repeated: it may hold a password.
  assert.throws(
    () => parseNetConf('{"ipam": {"openstackConf": {"password":S3cretXYZ}}}', "ADD"),
    (e: Error & { details?: string }) => !`${e.message} ${e.details ?? ""}`.includes("S3cret"),
  );
});

test("missing or unsupported cniVersion is code 1", () => {
  assert.throws(() => parseNetConf(JSON.stringify({ name: "n" }), "ADD"), { code: 1, message: /0\.1\.0/ });
  assert.throws(() => parseNetConf(conf({ cniVersion: "0.2.0" }), "ADD"), { code: 1, message: /"0\.2\.0"/ });
  assert.throws(() => parseNetConf(conf({ cniVersion: "0.3.1" }), "CHECK"), { code: 1, message: /CHECK/ });
  assert.throws(() => parseNetConf(conf({ cniVersion: "1.0.0" }), "GC"), { code: 1, message: /GC/ });
});

test("missing name is code 7", () => {
  assert.throws(() => parseNetConf(conf({ name: "" }), "ADD"), { code: 7, message: /name/ });
});

test("containerd's capitalised portMappings keys are normalised", () => {
  const c = parseNetConf(
    conf({ runtimeConfig: { portMappings: [{ HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "" }] } }),
    "ADD",
  );
  assert.deepEqual(c.runtimeConfig["portMappings"], [
    { hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "" },
  ]);
});

test("prevResult is decoded into the model; GC attachments under either key", () => {
  const c = parseNetConf(
    conf({ prevResult: { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.1.1.1/24" }] } }),
    "DEL",
  );
  assert.deepEqual(c.prevResult?.ips, [{ address: "10.1.1.1/24" }]);
  const g = parseNetConf(
    conf({ cniVersion: "1.1.0", "cni.dev/attachments": [{ containerID: "a", ifname: "eth0" }] }),
    "GC",
  );
  assert.deepEqual(g.validAttachments, [{ containerID: "a", ifname: "eth0" }]);
  assert.throws(
    () => parseNetConf(conf({ cniVersion: "1.1.0", "cni.dev/valid-attachments": [{ containerID: 1 }] }), "GC"),
    { code: 7 },
  );
});
