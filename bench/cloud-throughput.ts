// Request throughput of a port-update loop (GET the port, PUT a change guarded by If-Match) against
// the emulator in process, the emulator over loopback HTTP, and the real cloud (when
// scripts/realcloud/env.sh is sourced), in one run.
//   node build/bench/cloud-throughput.js [iterations]
import { Emulator } from "../src/cloud/emulator.js";
import { serve } from "../src/cloud/serve.js";
import { applySeed } from "../src/cloud/seed.js";
import { createClients, type Clients } from "../src/openstack/clients.js";
import type { AuthConfig } from "../src/openstack/keystone.js";
import { nodeFetch } from "../src/openstack/node-fetch.js";
import { systemClock } from "../src/base/clock.js";
import { ms, summary, table } from "./stats.js";

const N = Number(process.argv[2] ?? 200);
const admin = (authUrl: string): AuthConfig => ({
  authUrl,
  username: "admin",
  password: "secret",
  projectName: "admin",
  userDomainName: "Default",
  projectDomainName: "Default",
  interface: "public",
});

async function loop(c: Clients): Promise<{ perRequest: number[]; seconds: number; requests: number }> {
  const net = await c.neutron.createNetwork({ name: "bench" });
  const sub = await c.neutron.createSubnet({ network_id: net.id, cidr: "10.240.0.0/24", ip_version: 4 });
  const port = await c.neutron.createPort({ network_id: net.id, fixed_ips: [{ subnet_id: sub.id }] });
  const perRequest: number[] = [];
  await c.session.token();
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    let t = process.hrtime.bigint();
    const cur = await c.neutron.getPort(port.id);
    perRequest.push(ms(t));
    t = process.hrtime.bigint();
    await c.neutron.updatePort(port.id, { name: `bench-${i}` }, cur.revision_number);
    perRequest.push(ms(t));
  }
  const seconds = ms(start) / 1000;
  await c.neutron.deletePort(port.id);
  await c.neutron.deleteNetwork(net.id);
  return { perRequest, seconds, requests: 2 * N };
}

const rows: Array<Array<string | number>> = [];
function record(name: string, r: { perRequest: number[]; seconds: number; requests: number }): void {
  const s = summary(r.perRequest);
  rows.push([name, r.requests, r.requests / r.seconds, s.median, s.p95]);
}

{
  const em = new Emulator();
  applySeed(em, {});
  record(
    "emulator, in process",
    await loop(createClients({ auth: admin("http://cloud.test/v3"), fetch: em.fetch, clock: systemClock })),
  );
}
{
  const em = new Emulator();
  applySeed(em, {});
  const s = await serve(em, ["127.0.0.1:0"]);
  record(
    "emulator, HTTP on loopback",
    await loop(createClients({ auth: admin(`http://${s.addresses[0]}/v3`), fetch: nodeFetch(), clock: systemClock })),
  );
  await s.close();
}
const realUrl = process.env["TCNP_REAL_AUTH_URL"];
if (realUrl !== undefined) {
  record(
    "real Keystone+Neutron (Debian 12, Zed)",
    await loop(
      createClients({
        auth: { ...admin(realUrl), password: process.env["TCNP_REAL_PASSWORD"] ?? "secret" },
        fetch: nodeFetch({ timeoutMs: 60_000 }),
        clock: systemClock,
      }),
    ),
  );
} else {
  rows.push(["real cloud: not running (source scripts/realcloud/env.sh)", "-", "-", "-", "-"]);
}
process.stdout.write(
  `port-update loop: ${N} × (GET port + PUT port with If-Match)\n${table(["target", "requests", "req/s", "median ms", "p95 ms"], rows)}\n`,
);
