// The admin CLI as an operator meets it (issue 22 item 6): every subcommand answers --help with its
// usage and exit 0, an unknown flag prints where to look and exits 2, install writes nothing without
// --bin-dir, and --json is honoured where it is offered.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { distBinary, e2eSkipReason } from "../helpers/cni.js";

const skip = e2eSkipReason();
const tcnp = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(distBinary, args, { encoding: "utf8", env: { PATH: process.env["PATH"], ...env }, timeout: 30_000 });

// Each subcommand and the word its usage must name.
const SUBCOMMANDS: Array<[string[], RegExp]> = [
  [["version"], /usage: tcnp version/],
  [["install"], /usage: tcnp install --bin-dir DIR/],
  [["cloud"], /usage:/],
  [["route-controller"], /usage: .*route-controller/],
  [["lab"], /tcnp lab up/],
  [["doctor"], /usage: tcnp doctor/],
  [["agent"], /usage: tcnp agent/],
  [["gc"], /usage: tcnp gc/],
];

describe("the admin CLI", { skip: skip ?? false }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-cli-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("every subcommand answers --help on stdout with exit 0", () => {
    assert.equal(tcnp(["--help"]).status, 0);
    assert.equal(tcnp([]).status, 2, "no command is a usage error");
    for (const [argv, usage] of SUBCOMMANDS) {
      const r = tcnp([...argv, "--help"]);
      assert.equal(r.status, 0, `tcnp ${argv.join(" ")} --help: exit ${r.status}: ${r.stderr}`);
      assert.match(r.stdout, usage, `tcnp ${argv.join(" ")} --help`);
    }
  });

  it("an unknown flag is a usage error (exit 2) naming the flag, for every subcommand that takes flags", () => {
    for (const argv of [["install"], ["gc"], ["agent"], ["doctor"], ["lab", "status"], ["route-controller"]]) {
      const r = tcnp([...argv, "--no-such-flag"]);
      assert.equal(r.status, 2, `tcnp ${argv.join(" ")} --no-such-flag: exit ${r.status}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /no-such-flag/, `tcnp ${argv.join(" ")}`);
    }
  });

  it("install without --bin-dir prints its usage, exits 2 and writes nothing", () => {
    const conf = path.join(dir, "conf");
    const secrets = path.join(dir, "secrets");
    const cloudsYaml = path.join(dir, "clouds.yaml");
    fs.writeFileSync(cloudsYaml, "clouds: {}\n", { mode: 0o600 });
    const r = tcnp(["install", "--conf-dir", conf, "--secret", cloudsYaml, "--secret-dir", secrets]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--bin-dir is required/);
    assert.match(r.stderr, /usage: tcnp install/);
    assert.equal(fs.existsSync(conf) || fs.existsSync(secrets), false, "nothing written");
  });

  it("gc --json prints one object per network, and a tcnp configuration with no pods releases nothing", () => {
    const conf = path.join(dir, "net.d");
    const cache = path.join(dir, "cni-cache");
    fs.mkdirSync(conf, { recursive: true });
    fs.mkdirSync(path.join(cache, "results"), { recursive: true });
    fs.writeFileSync(
      path.join(conf, "10-tcnp.conflist"),
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "podnet",
        plugins: [
          {
            type: "veth-host",
            ipam: { type: "tcnp-ipam", stateDir: path.join(dir, "state"), neutronConf: { networks: ["n1"] } },
          },
        ],
      }),
    );
    const r = tcnp(["gc", "--conf-dir", conf, "--cache-dir", cache, "--dry-run", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    assert.equal(out.length, 1);
    assert.equal(out[0]!["network"], "podnet");
    assert.deepEqual(out[0]!["toRelease"], []);
    assert.deepEqual(out[0]!["released"], []);
  });

  it("lab status --json without a lab answers JSON saying so, exit 1", () => {
    const r = tcnp(["lab", "status", "--json", "--dir", path.join(dir, "no-lab")]);
    assert.equal(r.status, 1, "no lab is up");
    assert.equal((JSON.parse(r.stdout) as { up: boolean }).up, false);
  });
});
