// The built executable, seen from the outside: VERSION through libcni for every program name and
// spec version, and the error contract for bad input.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  cnicaller,
  distBinary,
  e2eSkipReason,
  execPlugin,
  makeSandbox,
  writeConf,
  type Sandbox,
} from "../helpers/cni.js";

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

describe("tcnp install (the built executable)", { skip: skip ?? false }, () => {
  it("writes network configurations readable by root only, and warns about an inline password", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-install-e2e-"));
    try {
      const seed = path.join(dir, "10-tcnp.conf");
      fs.writeFileSync(
        seed,
        JSON.stringify({
          name: "cni0",
          cniVersion: "0.3.1",
          type: "veth-route",
          ipam: { type: "tcnp-ipam", openstackConf: { password: "s3cr3t-PW" } },
        }),
      );
      const r = spawnSync(
        distBinary,
        ["install", "--bin-dir", path.join(dir, "bin"), "--conf", seed, "--conf-dir", path.join(dir, "net.d")],
        { encoding: "utf8" },
      );
      assert.equal(r.status, 0, r.stderr);
      const written = path.join(dir, "net.d", "10-tcnp.conf");
      assert.equal(fs.statSync(written).mode & 0o777, 0o600, "no one but root reads the configuration");
      assert.equal(fs.readFileSync(written, "utf8"), fs.readFileSync(seed, "utf8"));
      assert.match(
        r.stderr,
        /holds a secret inline \(ipam\.openstackConf\.password\); prefer a root-only clouds\.yaml/,
      );
      assert.equal(`${r.stdout}${r.stderr}`.includes("s3cr3t-PW"), false, "the secret itself is never printed");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
