// The route controller with the data plane: mix-mode pods on a dedicated pod subnet that the router
// is not attached to, so a client outside reaches them only through the router's routes, which the
// emulator applies as kernel routes in the router's namespace.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { parseControllerConfig } from "../../src/controller/config.js";
import { startController, type Controller } from "../../src/controller/run.js";
import { nullLogger } from "../../src/log/logger.js";
import { fileSources } from "../../src/openstack/credentials.js";
import { e2eSkipReason } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { MIX_NET, POD_SUBNET, ROUTER, World } from "../helpers/world.js";

const skip = rootSkipReason("iptables-restore") ?? e2eSkipReason();
const until = async (what: string, f: () => Promise<boolean>, ms: number): Promise<number> => {
  const t0 = Date.now();
  while (!(await f())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - t0;
};

describe("vrouter-route-controller with the data plane", { skip: skip ?? false }, () => {
  let w: World;
  let c: Controller | undefined;
  before(async () => {
    w = await World.start({ vms: 2, home: "mix", podSubnet: true });
    for (const vm of w.vms)
      w.install(
        vm,
        "10-tcnp.conf",
        w.mixConf({}, { neutronConf: { networks: [MIX_NET], mode: "mix", subnets: [POD_SUBNET] } }),
      );
  });
  after(async () => {
    await c?.stop();
    await w?.stop();
  });

  it("makes pods on two VMs reachable from outside, takes the route away after DEL within the interval, and keeps foreign routes", async () => {
    const ext = w.topo.ns.ext.slice("/var/run/netns/".length);
    const rtr = w.topo.ns.router;
    const admin = (await import("../../src/openstack/clients.js")).createClients({
      auth: {
        authUrl: "http://cloud.test/v3",
        username: "admin",
        password: "secret",
        projectName: "admin",
        userDomainId: "default",
        projectDomainId: "default",
        interface: "public",
      },
      fetch: w.em.fetch,
      clock: (await import("../../src/base/clock.js")).systemClock,
    });
    await admin.neutron.setRoutes(ROUTER, [{ destination: "192.0.2.0/24", nexthop: w.vms[1]!.ip }]);
    const pods = [await w.newPod(), await w.newPod()];
    const ips: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await w.cni(w.vms[i]!, "add", pods[i]!);
      assert.equal(r.status, 0, r.stderr);
      ips.push(String((r.json!["ips"] as Array<{ address: string }>)[0]!.address).split("/")[0]!);
    }
    assert.ok(
      ips.every((ip) => ip.startsWith("10.10.30.")),
      "pods come from the dedicated subnet",
    );
    assert.equal(await w.ping(ext, ips[0]!), false, "without the route the outside cannot reach the pod");
    const cfg = parseControllerConfig(
      JSON.stringify({
        openstack: {
          authUrl: "http://cloud.test/v3",
          username: "admin",
          password: "secret",
          project: "admin",
          domain: "default",
        },
        routerId: ROUTER,
        networks: [MIX_NET],
        podCidrs: ["10.10.30.0/24"],
        intervalSeconds: 0.5,
        kubernetes: { enabled: false },
      }),
      "controller.json",
      fileSources({}),
    );
    c = await startController(cfg, { env: {}, log: nullLogger, fetch: w.em.fetch });
    for (const ip of ips) await until(`the outside to reach ${ip}`, () => w.ping(ext, ip), 10_000);
    const kernelRoutes = async (): Promise<string[]> =>
      (await w.kernel.listRoutes(rtr)).filter((r) => r.gw !== undefined).map((r) => `${r.dst} ${r.gw}`);
    assert.ok((await kernelRoutes()).includes(`${ips[0]}/32 ${w.vms[0]!.ip}`));
    assert.equal((await w.cni(w.vms[0]!, "del", pods[0]!)).status, 0);
    const took = await until(
      "the route to go",
      async () => !(await kernelRoutes()).some((r) => r.startsWith(`${ips[0]}/32`)),
      2 * cfg.intervalMs + 2000,
    );
    assert.ok(took <= cfg.intervalMs + 1500, `the route went after ${took} ms (interval ${cfg.intervalMs} ms)`);
    assert.ok(await w.ping(ext, ips[1]!), "the other pod is still reachable");
    for (let i = 0; i < 3; i++) await c.step();
    assert.ok(
      (await admin.neutron.getRouter(ROUTER)).routes.some((r) => r.destination === "192.0.2.0/24"),
      "the foreign route survives every reconcile",
    );
    assert.ok((await kernelRoutes()).includes(`192.0.2.0/24 ${w.vms[1]!.ip}`));
    assert.equal((await w.cni(w.vms[1]!, "del", pods[1]!)).status, 0);
  });
});
