import { test } from "node:test";
import assert from "node:assert/strict";
import { runCni, type CniPlugin, type PluginContext } from "./skel.js";
import { CniError } from "./errors.js";

function recorder(): CniPlugin & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    async add(ctx: PluginContext) {
      calls.push(`add ${ctx.args.containerId}`);
      return { interfaces: [{ name: "eth0" }], ips: [{ address: "10.0.0.5/24", interface: 0 }], routes: [] };
    },
    async del() {
      calls.push("del");
    },
    async check() {
      calls.push("check");
    },
    async gc(ctx) {
      calls.push(`gc ${ctx.conf.validAttachments?.length}`);
    },
    async status() {
      throw new CniError(50, "cloud unreachable");
    },
  };
}
const env = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "c1",
  CNI_NETNS: "/run/netns/x",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin",
};
const conf = (v: string) => JSON.stringify({ cniVersion: v, name: "net", type: "t" });

test("VERSION answers the supported list, echoing the config version", async () => {
  const out = await runCni(recorder(), { env: { CNI_COMMAND: "VERSION" }, stdin: conf("0.4.0") });
  assert.equal(out.exitCode, 0);
  assert.deepEqual(JSON.parse(out.stdout), {
    cniVersion: "0.4.0",
    supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
  });
  const blank = await runCni(recorder(), { env: { CNI_COMMAND: "VERSION" }, stdin: "" });
  assert.equal(JSON.parse(blank.stdout).cniVersion, "1.1.0");
});

test("ADD prints the result in the config's version", async () => {
  const p = recorder();
  const out = await runCni(p, { env, stdin: conf("0.3.1") });
  assert.equal(out.exitCode, 0);
  assert.deepEqual(JSON.parse(out.stdout).ips, [{ version: "4", interface: 0, address: "10.0.0.5/24" }]);
  assert.deepEqual(p.calls, ["add c1"]);
});

test("errors are JSON on stdout with a non-zero exit", async () => {
  const bad = await runCni(recorder(), { env, stdin: "{nope" });
  assert.equal(bad.exitCode, 1);
  assert.equal(JSON.parse(bad.stdout).code, 6);
  const noEnv = await runCni(recorder(), { env: { ...env, CNI_IFNAME: undefined }, stdin: conf("1.0.0") });
  assert.deepEqual(JSON.parse(noEnv.stdout), {
    cniVersion: "1.0.0",
    code: 4,
    msg: "Invalid environment variables",
    details: "required env variables [CNI_IFNAME] missing",
  });
  const ver = await runCni(recorder(), { env, stdin: conf("9.9.9") });
  assert.equal(JSON.parse(ver.stdout).code, 1);
  const st = await runCni(recorder(), { env: { ...env, CNI_COMMAND: "STATUS" }, stdin: conf("1.1.0") });
  assert.equal(JSON.parse(st.stdout).code, 50);
});

test("an untyped throw becomes 999 with its message", async () => {
  const p = recorder();
  p.del = async () => {
    throw new Error("boom");
  };
  const out = await runCni(p, { env: { ...env, CNI_COMMAND: "DEL" }, stdin: conf("1.0.0") });
  assert.equal(JSON.parse(out.stdout).code, 999);
  assert.equal(JSON.parse(out.stdout).details, "boom");
});

test("no CNI_COMMAND prints the about text and exits 0", async () => {
  const out = await runCni(recorder(), { env: {}, stdin: "" }, { about: "tcnp-ipam" });
  assert.equal(out.exitCode, 0);
  assert.match(out.stderr, /tcnp-ipam/);
});

test("GC receives the valid attachments", async () => {
  const p = recorder();
  const stdin = JSON.stringify({
    cniVersion: "1.1.0",
    name: "n",
    type: "t",
    "cni.dev/valid-attachments": [{ containerID: "a", ifname: "eth0" }],
  });
  const out = await runCni(p, { env: { CNI_COMMAND: "GC", CNI_PATH: "/x" }, stdin });
  assert.equal(out.exitCode, 0);
  assert.deepEqual(p.calls, ["gc 1"]);
});
