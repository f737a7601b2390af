// The built executable, seen from the outside: VERSION through libcni for every program name and
// spec version, and the error contract for bad input.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { cnicaller, e2eSkipReason, execPlugin, makeSandbox, writeConf, type Sandbox } from "../helpers/cni.js";

const skip = e2eSkipReason();
const LIBCNI_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
const PLUGINS = ["tcnp-ipam", "host-device", "veth-host", "veth-route"];
const baseEnv = { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1", CNI_NETNS: "/var/run/netns/none", CNI_IFNAME: "eth0" };

describe("the built executable", { skip: skip ?? false }, () => {
  let sb: Sandbox;
  after(() => sb?.cleanup());

  it("answers VERSION under every plugin name, and libcni validates every supported version", () => {
    sb = makeSandbox("exe");
    for (const v of LIBCNI_VERSIONS) {
      writeConf(sb, `10-v${v}.conflist`, {
        cniVersion: v,
        name: `v${v.replace(/\./g, "")}`,
        plugins: PLUGINS.map((type) => ({ type })),
      });
      const r = cnicaller(sb, ["version", `v${v.replace(/\./g, "")}`]);
      assert.equal(r.status, 0, r.stderr);
      for (const p of PLUGINS)
        assert.match(r.stdout, new RegExp(`${p}: 0\\.3\\.0,0\\.3\\.1,0\\.4\\.0,1\\.0\\.0,1\\.1\\.0`));
      const val = cnicaller(sb, ["validate", `v${v.replace(/\./g, "")}`]);
      assert.equal(val.status, 0, `libcni rejects ${v}: ${val.stderr}`);
    }
    const direct = execPlugin(sb, "veth-route", { CNI_COMMAND: "VERSION" }, JSON.stringify({ cniVersion: "1.1.0" }));
    assert.deepEqual(direct.json, {
      cniVersion: "1.1.0",
      supportedVersions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    });
  });

  it("gives code 6 for malformed stdin, 4 for a missing variable, 1 for an unsupported version; exit non-zero", () => {
    sb ??= makeSandbox("exe");
    const cases: Array<[Record<string, string>, string, number, RegExp]> = [
      [baseEnv, "{not json", 6, /Cannot decode network configuration/],
      [
        { ...baseEnv, CNI_IFNAME: "" },
        JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "veth-route" }),
        4,
        /CNI_IFNAME/,
      ],
      [
        { CNI_COMMAND: "ADD", CNI_NETNS: "/x", CNI_IFNAME: "eth0" },
        JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "veth-route" }),
        4,
        /CNI_CONTAINERID/,
      ],
      [baseEnv, JSON.stringify({ cniVersion: "0.2.0", name: "n", type: "veth-route" }), 1, /"0\.2\.0"/],
      [baseEnv, JSON.stringify({ cniVersion: "7.0.0", name: "n", type: "veth-route" }), 1, /plugin supports/],
    ];
    for (const plugin of PLUGINS) {
      for (const [env, stdin, code, msg] of cases) {
        const r = execPlugin(sb, plugin, env, stdin);
        assert.notEqual(r.status, 0, `${plugin} exit status`);
        assert.equal(r.json?.["code"], code, `${plugin}: ${r.stdout}`);
        assert.match(String(r.json?.["details"]), msg);
        assert.equal(typeof r.json?.["msg"], "string");
      }
    }
  });
});
