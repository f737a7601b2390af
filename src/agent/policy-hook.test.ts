import assert from "node:assert/strict";
import { test } from "node:test";
import { policyPart } from "./policy-hook.js";

const env = (o: Record<string, string>): Record<string, string> => ({
  CNI_CONTAINERID: "abc123",
  CNI_IFNAME: "eth0",
  CNI_NETNS: "/var/run/netns/cni-1",
  CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0",
  ...o,
});

test("policyPart: each attach plugin's part; none without a Kubernetes pod", () => {
  const out = JSON.stringify({ ips: [{ address: "10.0.0.5/24" }] });
  assert.deepEqual(policyPart("veth-route", env({}), "{}", out)?.ips, ["10.0.0.5"]);
  assert.equal(policyPart("host-device", env({}), "{}", "")?.podNetns, "/var/run/netns/cni-1");
  assert.equal(policyPart("veth-host", env({}), JSON.stringify({ containerInterface: "svc0" }), "")?.podVeth, "svc0");
  assert.equal(policyPart("tcnp-ipam", env({}), "{}", ""), undefined);
  assert.equal(policyPart("veth-route", env({ CNI_ARGS: "IgnoreUnknown=1" }), "{}", ""), undefined);
});

test("policyPart: a container ID or pod name that could name another file or API path is refused", () => {
  assert.throws(() => policyPart("veth-route", env({ CNI_CONTAINERID: "../../etc/x" }), "{}", ""), /CNI_CONTAINERID/);
  const args = (ns: string, name: string): Record<string, string> =>
    env({ CNI_ARGS: `K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}` });
  assert.throws(() => policyPart("veth-route", args("kube-system/secrets", "x"), "{}", ""), /K8S_POD_NAMESPACE/);
  assert.throws(() => policyPart("veth-route", args("shop", "a?watch=1"), "{}", ""), /K8S_POD_NAME/);
});
