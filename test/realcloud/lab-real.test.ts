// `tcnp lab up --cloud NAME` against the real Keystone + Neutron + Nova (fake driver): the lab makes
// its networks, router and servers there, pods in both modes come up through libcni, every path of
// the matrix works, doctor asks the real Neutron, and `lab down` removes everything it made — in the
// cloud too.
import { describe, it, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createClients } from "../../src/openstack/clients.js";
import { systemClock } from "../../src/base/clock.js";
import type { LabState } from "../../src/lab/state.js";
import { distBinary, e2eSkipReason } from "../helpers/cni.js";
import { realCloud, realCloudSkipReason } from "../helpers/realcloud.js";
import { rootSkipReason } from "../helpers/root.js";

const skip = realCloudSkipReason() ?? rootSkipReason("iptables-restore", "nc", "ping") ?? e2eSkipReason();
const labNamespaces = (): string[] =>
  spawnSync("ip", ["netns", "list"], { encoding: "utf8" })
    .stdout.split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => n.startsWith("tcnp-lab-"));

describe("tcnp lab on a real OpenStack (--cloud)", { skip: skip ?? false }, () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-labreal-"));
  const dir = path.join(base, "lab");
  const clouds = path.join(base, "clouds.yaml");
  const tcnp = (args: string[]): { code: number; stdout: string; stderr: string } => {
    const r = spawnSync(distBinary, args, {
      encoding: "utf8",
      timeout: 600_000,
      env: { ...process.env, OS_CLIENT_CONFIG_FILE: clouds },
    });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  let lab: LabState | undefined;
  before(() => {
    assert.deepEqual(labNamespaces(), [], "no lab may be up before this test");
    const a = realCloud().auth;
    fs.writeFileSync(
      clouds,
      [
        "clouds:",
        "  tcnp-real:",
        "    auth:",
        `      auth_url: ${a.authUrl}`,
        `      username: ${a.username}`,
        `      password: "${a.password}"`,
        `      project_name: ${a.projectName}`,
        `      user_domain_name: ${a.userDomainName}`,
        `      project_domain_name: ${a.projectDomainName}`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
  });
  after(() => {
    tcnp(["lab", "down", "--dir", dir]);
    for (const n of labNamespaces()) spawnSync("ip", ["netns", "del", n]);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it("lab up --cloud refuses an unknown cloud before making anything, and down cleans up after a failed up", async () => {
    const rc = realCloud();
    const bad = tcnp([
      "lab",
      "up",
      "--dir",
      dir,
      "--cloud",
      "no-such-cloud",
      "--image",
      rc.image,
      "--flavor",
      rc.flavor,
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /no-such-cloud: is not a cloud in/);
    assert.equal(fs.existsSync(dir), false);
    const failed = tcnp([
      "lab",
      "up",
      "--dir",
      dir,
      "--cloud",
      "tcnp-real",
      "--image",
      "00000000-0000-4000-8000-000000000000",
      "--flavor",
      rc.flavor,
    ]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /lab up failed: POST \/servers \(compute\) failed: 400/);
    const down = tcnp(["lab", "down", "--dir", dir]);
    assert.equal(down.code, 0, down.stdout + down.stderr);
    const c = createClients({ auth: rc.auth, fetch: rc.fetch, clock: systemClock });
    assert.deepEqual(
      (await c.neutron.listNetworks()).filter((n) => n.name.startsWith("tcnp-lab-")).map((n) => n.id),
      [],
    );
    assert.deepEqual(
      (await c.neutron.listRouters()).filter((x) => x.name.startsWith("tcnp-lab-")).map((x) => x.id),
      [],
    );
    assert.deepEqual(labNamespaces(), []);
  });

  it("lab up --cloud: every path of the matrix works", () => {
    const rc = realCloud();
    const r = tcnp(["lab", "up", "--dir", dir, "--cloud", "tcnp-real", "--image", rc.image, "--flavor", rc.flavor]);
    assert.equal(r.code, 0, `lab up failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /15 of 15 paths work/);
    const pw = rc.auth.password ?? "";
    assert.ok(pw !== "" && !r.stdout.includes(pw) && !r.stderr.includes(pw), "the password is never printed");
    lab = JSON.parse(fs.readFileSync(path.join(dir, "lab.json"), "utf8")) as LabState;
    assert.equal(lab.cloud?.servers.length, 2);
    assert.equal(lab.pods.filter((p) => p.ip !== undefined).length, 6);
  });

  it("doctor asks the real Neutron and calls healthy pods healthy", () => {
    for (const pod of ["vm1-mix-a", "vm2-eni-a"]) {
      const r = tcnp(["lab", "doctor", pod, "--json", "--dir", dir]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const rep = JSON.parse(r.stdout) as { healthy: boolean; neutron?: { port?: { ips: string[] }; error?: string } };
      assert.equal(rep.healthy, true);
      assert.equal(rep.neutron?.error, undefined);
      assert.ok(rep.neutron?.port?.ips.includes(lab!.pods.find((p) => p.podName === pod)!.ip!));
    }
  });

  it("doctor names a pod address taken off the real Neutron port", async () => {
    const rc = realCloud();
    const c = createClients({ auth: rc.auth, fetch: rc.fetch, clock: systemClock });
    const pod = lab!.pods.find((p) => p.podName === "vm2-mix-b")!;
    const vm = lab!.vms.find((v) => v.name === pod.vm)!;
    const port = (await c.neutron.listPorts({ device_id: vm.serverId })).find((p) =>
      p.fixed_ips.some((f) => f.ip_address === pod.ip),
    )!;
    await c.neutron.updateFixedIps(
      port.id,
      port.fixed_ips.filter((f) => f.ip_address !== pod.ip),
    );
    const r = tcnp(["lab", "doctor", pod.podName, "--json", "--dir", dir]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const rep = JSON.parse(r.stdout) as { findings: Array<{ severity: string; code: string }> };
    assert.ok(
      rep.findings.some((f) => f.severity === "error" && f.code === "address-not-on-port"),
      JSON.stringify(rep.findings),
    );
  });

  it("lab down removes the lab from the kernel and from the cloud", async () => {
    const r = tcnp(["lab", "down", "--dir", dir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(labNamespaces(), []);
    assert.equal(fs.existsSync(dir), false);
    const rc = realCloud();
    const c = createClients({ auth: rc.auth, fetch: rc.fetch, clock: systemClock });
    assert.deepEqual(
      (await c.neutron.listNetworks()).filter((n) => n.name.startsWith("tcnp-lab-")),
      [],
    );
    assert.deepEqual(
      (await c.neutron.listRouters()).filter((x) => x.name.startsWith("tcnp-lab-")),
      [],
    );
    for (const id of lab!.cloud!.servers) {
      const gone = await c.nova.getServer(id).then(
        () => false,
        () => true,
      );
      assert.ok(gone, `server ${id} is deleted`);
    }
    for (const id of lab!.cloud!.ports)
      assert.equal(
        await c.neutron.getPort(id).then(
          () => true,
          () => false,
        ),
        false,
        `port ${id} is deleted`,
      );
  });
});
