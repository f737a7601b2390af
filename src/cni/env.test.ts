import { test } from "node:test";
import assert from "node:assert/strict";
import { parseCmdArgs, parseCniArgs, podRef, validateIfname } from "./env.js";

const base = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "abc123",
  CNI_NETNS: "/var/run/netns/cni-1",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin:/usr/lib/cni",
};

test("parseCmdArgs reads every variable and splits CNI_PATH", () => {
  const a = parseCmdArgs({ ...base, CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=p" });
  assert.equal(a.command, "ADD");
  assert.deepEqual(a.path, ["/opt/cni/bin", "/usr/lib/cni"]);
  assert.equal(a.args.get("K8S_POD_NAME"), "p");
});

test("a missing variable is code 4 naming it", () => {
  assert.throws(() => parseCmdArgs({ ...base, CNI_IFNAME: undefined }), { code: 4, message: /\[CNI_IFNAME\]/ });
  assert.throws(() => parseCmdArgs({ ...base, CNI_CONTAINERID: "", CNI_NETNS: "" }), {
    code: 4,
    message: /CNI_CONTAINERID,CNI_NETNS/,
  });
});

test("DEL accepts an empty CNI_NETNS, ADD does not", () => {
  assert.equal(parseCmdArgs({ ...base, CNI_COMMAND: "DEL", CNI_NETNS: "" }).netns, "");
  assert.throws(() => parseCmdArgs({ ...base, CNI_NETNS: "" }), { code: 4, message: /CNI_NETNS/ });
});

test("netns paths of every runtime style are accepted; relative ones are not", () => {
  for (const p of ["/var/run/netns/cni-1", "/run/netns/netns-2", "/proc/123/ns/net"]) {
    assert.equal(parseCmdArgs({ ...base, CNI_NETNS: p }).netns, p);
  }
  assert.throws(() => parseCmdArgs({ ...base, CNI_NETNS: "netns/x" }), { code: 4 });
});

test("container IDs and interface names are validated", () => {
  assert.throws(() => parseCmdArgs({ ...base, CNI_CONTAINERID: "-bad" }), { code: 4, message: /CNI_CONTAINERID/ });
  assert.throws(() => parseCmdArgs({ ...base, CNI_IFNAME: "a-very-long-interface" }), {
    code: 4,
    message: /CNI_IFNAME/,
  });
  assert.equal(validateIfname("eth0"), undefined);
  assert.match(validateIfname("a/b") ?? "", /contains/);
  assert.match(validateIfname("..") ?? "", /not a valid/);
});

test("unknown CNI_COMMAND is code 4", () => {
  assert.throws(() => parseCmdArgs({ ...base, CNI_COMMAND: "FROB" }), { code: 4, message: /FROB/ });
});

test("K8S_* args are found in any order, with extra keys", () => {
  for (const raw of [
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u",
    "K8S_POD_UID=u;K8S_POD_NAME=p;IgnoreUnknown=1;K8S_POD_NAMESPACE=ns",
  ]) {
    assert.deepEqual(podRef(parseCniArgs(raw)), { namespace: "ns", name: "p", uid: "u" });
  }
  assert.throws(() => parseCniArgs("novalue"), { code: 4 });
  assert.equal(parseCniArgs(";;").size, 0);
});
