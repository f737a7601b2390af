// vrouter-route-controller from the built executable against `tcnp cloud`: --once prints a reconcile;
// running, it serves /healthz and Prometheus /metrics and stops on SIGTERM.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createClients } from "../../src/openstack/clients.js";
import { nodeFetch } from "../../src/openstack/node-fetch.js";
import { systemClock } from "../../src/base/clock.js";
import { e2eSkipReason, makeSandbox, type Sandbox } from "../helpers/cni.js";
import { startCloudProcess, type CloudProcess } from "../helpers/cloud-process.js";

const skip = e2eSkipReason();
const NET = "6a000000-0000-4000-8000-000000000001";
const ROUTER = "6c000000-0000-4000-8000-000000000001";

describe("vrouter-route-controller (the built executable)", { skip: skip ?? false }, () => {
  let cloud: CloudProcess | undefined;
  let sb: Sandbox | undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-vrc-"));
  after(async () => {
    await cloud?.stop();
    sb?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("reconciles once, then runs with /healthz and /metrics until SIGTERM", async () => {
    fs.writeFileSync(
      path.join(dir, "seed.json"),
      JSON.stringify({
        networks: [{ id: NET, name: "pods", subnets: [{ name: "pods-v4", cidr: "10.50.0.0/24" }] }],
        routers: [{ id: ROUTER, name: "r1", interfaces: ["pods-v4"] }],
        servers: [{ name: "vm1", ports: [{ network: "pods", ip: "10.50.0.11" }] }],
      }),
    );
    cloud = await startCloudProcess(["--listen", "127.0.0.1:0", "--seed", path.join(dir, "seed.json")]);
    const auth = {
      authUrl: `${cloud.url}/v3`,
      username: "admin",
      password: "secret",
      projectName: "admin",
      userDomainId: "default",
      projectDomainId: "default",
      interface: "public" as const,
    };
    const c = createClients({ auth, fetch: nodeFetch(), clock: systemClock });
    const port = (await c.neutron.listPorts({ network_id: NET })).find((p) => p.device_owner === "compute:nova")!;
    await c.neutron.updateFixedIps(port.id, [
      ...port.fixed_ips,
      { subnet_id: port.fixed_ips[0]!.subnet_id, ip_address: "10.50.0.77" },
    ]);
    await c.neutron.setTags("ports", port.id, ["tcnp-mix", "tcnp-node-ip=10.50.0.11"]);
    const conf = path.join(dir, "vrc.json");
    fs.writeFileSync(
      conf,
      JSON.stringify({
        openstack: {
          authUrl: auth.authUrl,
          username: "admin",
          password: "secret",
          project: "admin",
          domain: "default",
        },
        routerId: ROUTER,
        networks: [NET],
        intervalSeconds: 0.2,
        listen: "127.0.0.1:0",
        kubernetes: { enabled: false },
      }),
    );
    sb = makeSandbox("vrc");
    const bin = path.join(sb.binDir, "vrouter-route-controller");
    const once = spawnSync(bin, ["--config", conf, "--once"], { encoding: "utf8" });
    assert.equal(once.status, 0, once.stderr);
    const r = JSON.parse(once.stdout) as { added: number; installed: number; missing: string[] };
    assert.deepEqual([r.added, r.installed, r.missing], [1, 1, []]);
    assert.deepEqual((await c.neutron.getRouter(ROUTER)).routes, [
      { destination: "10.50.0.77/32", nexthop: "10.50.0.11" },
    ]);
    const bad = spawnSync(bin, ["--config", path.join(dir, "missing.json")], { encoding: "utf8" });
    assert.equal(bad.status, 2);
    // Running: find the HTTP address in its log, read /metrics and /healthz, stop it.
    const proc = spawn(bin, ["--config", conf], { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    proc.stderr.on("data", (d: Buffer) => (log += d.toString()));
    const address = await new Promise<string>((resolve, reject) => {
      const t = setInterval(() => {
        const m = /"address":"([^"]+)"/.exec(log);
        if (m !== null) {
          clearInterval(t);
          resolve(m[1]!);
        }
      }, 50);
      setTimeout(() => reject(new Error(`no address in: ${log}`)), 10_000);
    });
    await new Promise((res) => setTimeout(res, 600));
    const f = nodeFetch();
    const metrics = await f({ method: "GET", url: `http://${address}/metrics`, headers: {} });
    assert.match(metrics.body, /tcnp_router_routes_installed 1/);
    assert.match(metrics.body, /^tcnp_controller_cloud_requests_total\{method="GET",outcome="ok"\} [1-9]\d*$/m);
    assert.match(metrics.body, /^# TYPE tcnp_reconcile_duration_seconds histogram$/m);
    assert.match(metrics.body, /^tcnp_reconcile_duration_seconds_bucket\{le="\+Inf"\} [1-9]\d*$/m);
    // The text Prometheus's own checker accepts (Debian's prometheus package).
    const pt = spawnSync("promtool", ["check", "metrics"], { input: metrics.body, encoding: "utf8" });
    assert.equal(pt.status, 0, `promtool check metrics: ${pt.stdout}${pt.stderr}`);
    const health = await f({ method: "GET", url: `http://${address}/healthz`, headers: {} });
    assert.equal(health.status, 200);
    const code = await new Promise<number | null>((resolve) => {
      proc.once("exit", (c2) => resolve(c2));
      proc.kill("SIGTERM");
    });
    assert.equal(code, 0);
    assert.equal(log.includes("secret"), false, "no secret in the controller's log");
  });
});
