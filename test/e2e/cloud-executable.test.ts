// `tcnp cloud` from the built executable: it serves Keystone/Neutron/Nova on a socket, and its faults
// and settings change while it runs.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createClients } from "../../src/openstack/clients.js";
import { isOpenStackError } from "../../src/openstack/errors.js";
import { nodeFetch } from "../../src/openstack/node-fetch.js";
import { systemClock } from "../../src/base/clock.js";
import { distBinary, e2eSkipReason } from "../helpers/cni.js";
import { startCloudProcess, type CloudProcess } from "../helpers/cloud-process.js";

const skip = e2eSkipReason();

describe("tcnp cloud (the built executable)", { skip: skip ?? false }, () => {
  let cloud: CloudProcess | undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-cloudexe-"));
  after(async () => {
    await cloud?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const ctl = (...args: string[]) =>
    spawnSync(distBinary, ["cloud", ...args, "--url", cloud!.url], { encoding: "utf8" });

  it("serves the documented admin, takes faults while running, and persists its world", async () => {
    const state = path.join(dir, "state.json");
    cloud = await startCloudProcess([
      "--listen",
      "127.0.0.1:0",
      "--state",
      state,
      "--log-file",
      path.join(dir, "cloud.log"),
    ]);
    const c = createClients({
      auth: {
        authUrl: `${cloud.url}/v3`,
        username: "admin",
        password: "secret",
        projectName: "admin",
        userDomainName: "Default",
        projectDomainName: "Default",
        interface: "public",
      },
      fetch: nodeFetch(),
      clock: systemClock,
      retries: 0,
    });
    const net = await c.neutron.createNetwork({ name: "n1" });
    let r = ctl(
      "fault",
      "add",
      "--kind",
      "error",
      "--status",
      "503",
      "--service",
      "network",
      "--method",
      "GET",
      "--path",
      "^/v2.0/networks",
    );
    assert.equal(r.status, 0, r.stderr);
    const e = await c.neutron.getNetwork(net.id).catch((x: unknown) => x);
    assert.ok(isOpenStackError(e, "HTTPInternalServerError", 503), String(e));
    r = ctl("fault", "clear");
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await c.neutron.getNetwork(net.id)).name, "n1");
    r = ctl("config", "routeLimit=5", "routeLimitMode=OverQuota");
    assert.equal(JSON.parse(r.stdout).config.routeLimit, 5);
    r = ctl("expire-tokens");
    assert.equal(r.status, 0);
    const before = c.session.calls.identity;
    await c.neutron.listNetworks();
    assert.equal(c.session.calls.identity, before + 1, "the running cloud expired our token");
    await cloud.stop();
    cloud = await startCloudProcess(["--listen", "127.0.0.1:0", "--state", state]);
    const c2 = createClients({
      auth: {
        authUrl: `${cloud.url}/v3`,
        username: "admin",
        password: "secret",
        projectName: "admin",
        userDomainName: "Default",
        projectDomainName: "Default",
        interface: "public",
      },
      fetch: nodeFetch(),
      clock: systemClock,
    });
    assert.equal((await c2.neutron.getNetwork(net.id)).name, "n1", "the world came back from the state file");
    assert.equal(JSON.parse(ctl("config").stdout).config.routeLimit, 5);
  });
});
