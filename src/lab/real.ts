// `tcnp lab up --cloud NAME`: the lab against a real OpenStack (a clouds.yaml entry) instead of the
// embedded one. The lab makes its own networks, subnets, router and servers there (recording each as
// it is made, so `down` removes them), mirrors them on this kernel as the embedded lab does, and runs
// an agent that plays the hypervisor's and the network node's part: it plugs a NIC into a VM's
// namespace when Nova attaches a port to that server (and unplugs it on detach), applies the router's
// static routes in the router namespace, answers the metadata service for the VMs, and relays the
// cloud's endpoints into the VMs' namespaces.
import * as http from "node:http";
import type * as net from "node:net";
import { isOpenStackError } from "../openstack/errors.js";
import { createClients, type Clients } from "../openstack/clients.js";
import { fileSources, resolveCredentials } from "../openstack/credentials.js";
import { nodeFetch } from "../openstack/node-fetch.js";
import { systemClock } from "../base/clock.js";
import { plugNic, syncRouterRoutes, tapName } from "../cloud/datapath.js";
import { boundInNetns } from "../cloud/serve.js";
import { namedNetns, type Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import { relayIntoNetns, targetOf, type Relay, type Target } from "./relay.js";
import { LAB, labVmIp } from "./spec.js";
import type { LabState } from "./state.js";

/** What the lab made in the real cloud; written before each creation returns, read by `down`. */
export interface RealCloudRecord {
  name: string;
  cloudsYaml?: string;
  networks: Array<{ id: string; role: "mix" | "eni"; bridge: string; mtu: number }>;
  subnets: string[];
  router?: string;
  routerSubnets: string[];
  ports: string[];
  servers: string[];
}

type Env = Readonly<Record<string, string | undefined>>;

export function realClients(
  rec: Pick<RealCloudRecord, "name" | "cloudsYaml">,
  env: Env,
): Clients & { authUrl: string } {
  const creds = resolveCredentials(
    { cloud: rec.name, ...(rec.cloudsYaml === undefined ? {} : { cloudsYaml: rec.cloudsYaml }) },
    fileSources(env),
    "--cloud",
  );
  const c = createClients({
    auth: creds.auth,
    clock: systemClock,
    fetch: nodeFetch({
      timeoutMs: 60_000,
      ...(creds.caCert === undefined ? {} : { caCert: creds.caCert }),
      ...(creds.insecure === undefined ? {} : { insecure: creds.insecure }),
    }),
  });
  return { ...c, authUrl: creds.auth.authUrl };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A lab network made in the cloud. */
interface LabNet {
  net: string;
  subnet: string;
  routerMac: string;
  mtu: number;
}

export interface Provisioned {
  mix: LabNet;
  eni: LabNet;
  router: string;
  servers: Array<{ id: string; mac: string; ip: string }>;
}

/** Make the lab's networks, router and servers in the real cloud. `save` persists `rec` after each step. */
export async function provision(
  c: Clients,
  rec: RealCloudRecord,
  o: { vms: number; image: string; flavor: string },
  save: () => void,
  say: (m: string) => void,
): Promise<Provisioned> {
  const makeNet = async (role: "mix" | "eni", cidr: string, bridge: string): Promise<LabNet> => {
    const net = await c.neutron.createNetwork({ name: `${LAB.prefix}-${role}` });
    const mtu = net.mtu ?? 1500;
    rec.networks.push({ id: net.id, role, bridge, mtu });
    save();
    const sub = await c.neutron.createSubnet({
      network_id: net.id,
      name: `${LAB.prefix}-${role}-v4`,
      ip_version: 4,
      cidr: `${cidr}.0/24`,
      gateway_ip: `${cidr}.1`,
      enable_dhcp: false,
      allocation_pools: [{ start: `${cidr}.50`, end: `${cidr}.250` }],
    });
    rec.subnets.push(sub.id);
    save();
    say(`network ${LAB.prefix}-${role} ${net.id}, subnet ${cidr}.0/24 (no DHCP)`);
    return { net: net.id, subnet: sub.id, routerMac: "", mtu };
  };
  const nets: Record<"mix" | "eni", LabNet> = {
    mix: await makeNet("mix", "10.10.10", "br0"),
    eni: await makeNet("eni", "10.10.20", "br1"),
  };
  const router = await c.neutron.createRouter({ name: `${LAB.prefix}-router` });
  rec.router = router.id;
  save();
  for (const role of ["mix", "eni"] as const) {
    await c.neutron.addRouterInterface(router.id, nets[role].subnet);
    rec.routerSubnets.push(nets[role].subnet);
    save();
    const port = (await c.neutron.listPorts({ device_id: router.id, network_id: nets[role].net }))[0];
    if (port === undefined) throw new Error(`The router's interface port on ${LAB.prefix}-${role} is missing`);
    nets[role].routerMac = port.mac_address;
  }
  say(`router ${LAB.prefix}-router ${router.id} on both subnets`);
  const servers: Provisioned["servers"] = [];
  for (let i = 1; i <= o.vms; i++) {
    const port = await c.neutron.createPort({
      network_id: nets.mix.net,
      name: `${LAB.prefix}-vm${i}`,
      fixed_ips: [{ subnet_id: nets.mix.subnet, ip_address: labVmIp(i) }],
    });
    rec.ports.push(port.id);
    save();
    const server = await c.nova.createServer({
      name: `${LAB.prefix}-vm${i}`,
      imageRef: o.image,
      flavorRef: o.flavor,
      networks: [{ port: port.id }],
    });
    rec.servers.push(server.id);
    save();
    servers.push({ id: server.id, mac: port.mac_address, ip: labVmIp(i) });
  }
  const end = Date.now() + 180_000;
  for (const s of servers) {
    for (;;) {
      const st = (await c.nova.getServer(s.id)).status;
      if (st === "ACTIVE") break;
      if (st === "ERROR") throw new Error(`Nova could not build server ${s.id} (status ERROR)`);
      if (Date.now() > end) throw new Error(`server ${s.id} is still ${st} after 180 s`);
      await sleep(500);
    }
  }
  say(`servers ${servers.map((s, i) => `vm${i + 1} ${s.id}`).join(", ")} ACTIVE`);
  return { mix: nets.mix, eni: nets.eni, router: router.id, servers };
}

const ignoreNotFound = (e: unknown): void => {
  if (!isOpenStackError(e, "itemNotFound") && !(isOpenStackError(e) && e.status === 404)) throw e;
};

/** Remove everything `provision` recorded (and ports left on the lab's networks), in reverse. */
export async function deprovision(c: Clients, rec: RealCloudRecord, say: (m: string) => void): Promise<void> {
  for (const id of rec.servers) await c.nova.deleteServer(id).catch(ignoreNotFound);
  const end = Date.now() + 120_000;
  for (const id of rec.servers) {
    while (
      Date.now() < end &&
      (await c.nova.getServer(id).then(
        () => true,
        (e: unknown) => (ignoreNotFound(e), false),
      ))
    )
      await sleep(500);
  }
  if (rec.servers.length > 0) say(`deleted servers ${rec.servers.join(", ")}`);
  if (rec.router !== undefined) await c.neutron.updateRouter(rec.router, { routes: [] }).catch(ignoreNotFound);
  let ports = 0;
  for (const n of rec.networks) {
    for (const p of await c.neutron.listPorts({ network_id: n.id }).catch(() => [])) {
      if (p.device_owner === "network:router_interface") continue;
      await c.neutron.deletePort(p.id).catch(ignoreNotFound);
      ports++;
    }
  }
  for (const id of rec.ports) await c.neutron.deletePort(id).catch(ignoreNotFound);
  if (ports > 0) say(`deleted ${ports} ports on the lab's networks`);
  if (rec.router !== undefined) {
    for (const s of rec.routerSubnets) await c.neutron.removeRouterInterface(rec.router, s).catch(ignoreNotFound);
    await c.neutron.deleteRouter(rec.router).catch(ignoreNotFound);
    say(`deleted router ${rec.router}`);
  }
  for (const n of rec.networks) await c.neutron.deleteNetwork(n.id).catch(ignoreNotFound);
  if (rec.networks.length > 0) say(`deleted networks ${rec.networks.map((n) => n.id).join(", ")}`);
}

/**
 * The hypervisor's and network node's part for a lab on a real cloud, until SIGTERM: relays, the
 * metadata service, NIC hot-plug from Nova attachments, router routes into the router namespace.
 */
export async function runAgent(
  s: LabState,
  kernel: Kernel,
  env: Env,
  log: Logger,
  ready: () => void,
  intervalMs = 500,
): Promise<never> {
  const rec = s.cloud!;
  const c = realClients(rec, env);
  const token = await c.session.token();
  const targets = new Map<string, Target>();
  for (const url of [c.authUrl, c.session.endpoint("network", token), c.session.endpoint("compute", token)]) {
    const t = targetOf(url);
    targets.set(`${t.host}:${t.port}`, t);
  }
  const relays: Relay[] = [];
  for (const vm of s.vms) relays.push(await relayIntoNetns(namedNetns(vm.ns), [...targets.values()], kernel));
  log.info("relaying the cloud's endpoints into the VMs", {
    targets: [...targets.keys()],
    vms: s.vms.map((v) => v.name),
  });
  // The metadata service, answering each VM by its source address.
  const byIp = new Map(s.vms.map((v) => [v.ip, v]));
  const md = http.createServer((req, res) => {
    const vm = byIp.get((req.socket.remoteAddress ?? "").replace(/^::ffff:/, ""));
    if (vm === undefined || req.url !== "/openstack/latest/meta_data.json") {
      res.writeHead(404).end();
      return;
    }
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ uuid: vm.serverId, name: `${LAB.prefix}-${vm.name}` }));
  });
  await new Promise<void>((r) =>
    md.listen(boundInNetns(namedNetns(`${LAB.prefix}-svc`), "169.254.169.254", 80) as net.Server, () => r()),
  );
  const primary = new Set(rec.ports);
  const vmOf = new Map(s.vms.map((v) => [v.serverId, v]));
  const netNs = namedNetns(`${LAB.prefix}-net`);
  const stop = (): void => {
    md.close();
    for (const r of relays) void r.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  ready();
  for (;;) {
    try {
      const ports = (await c.neutron.listPorts({ device_id: s.vms.map((v) => v.serverId) })).filter(
        (p) => !primary.has(p.id) && p.device_owner.startsWith("compute:"),
      );
      const taps = new Set((await kernel.listLinks(netNs)).map((l) => l.name).filter((n) => n.startsWith("tap")));
      for (const p of ports) {
        const net = rec.networks.find((n) => n.id === p.network_id);
        const vm = vmOf.get(p.device_id);
        if (net === undefined || vm === undefined || taps.has(tapName(p.id))) continue;
        const name = await plugNic(kernel, { netns: netNs, bridge: net.bridge }, vm.ns, p, net.mtu);
        log.info("hot-plugged a NIC", { server: vm.name, port: p.id, guestName: name, mac: p.mac_address });
      }
      const want = new Set(ports.map((p) => tapName(p.id)));
      for (const t of taps) {
        if (want.has(t)) continue;
        await kernel.deleteLink(netNs, t);
        log.info("unplugged a NIC", { tap: t });
      }
      if (rec.router !== undefined)
        await syncRouterRoutes(
          kernel,
          `${LAB.prefix}-rtr`,
          (await c.neutron.getRouter(rec.router)).routes,
          log,
          `${LAB.prefix}-router`,
        );
    } catch (e) {
      log.warn("data-path sync failed; retrying", { error: e });
    }
    await sleep(intervalMs);
  }
}
