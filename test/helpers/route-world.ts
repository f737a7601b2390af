// A cloud for the route controller: one network and subnet on a router, VMs whose ports carry pod
// addresses the way tcnp-ipam leaves them (tagged tcnp-mix, node address tagged), on the emulator.
import { Emulator, type EmulatorConfig } from "../../src/cloud/emulator.js";
import { applySeed } from "../../src/cloud/seed.js";
import type { ControllerConfig, KubernetesConfig } from "../../src/controller/config.js";
import { Metrics } from "../../src/controller/metrics.js";
import { Reconciler } from "../../src/controller/reconciler.js";
import { blockChooser } from "../../src/ipam/blocks.js";
import type { IpamConfig } from "../../src/ipam/config.js";
import { addMany, removeAddresses } from "../../src/ipam/mix.js";
import type { VmPort } from "../../src/ipam/vm-port.js";
import { createLogger, memorySink, nullLogger } from "../../src/log/logger.js";
import { createClients, type Clients } from "../../src/openstack/clients.js";
import type { HttpFetch } from "../../src/openstack/http.js";
import type { AuthConfig } from "../../src/openstack/keystone.js";
import { systemClock } from "../../src/base/clock.js";

export const NET = "5a000000-0000-4000-8000-000000000001";
export const SUBNET = "5b000000-0000-4000-8000-000000000001";
export const ROUTER = "5c000000-0000-4000-8000-000000000001";
export const server = (i: number): string => `5d000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
export const ADMIN: AuthConfig = {
  authUrl: "http://cloud.test/v3",
  username: "admin",
  password: "secret",
  projectName: "admin",
  userDomainId: "default",
  projectDomainId: "default",
  interface: "public",
};

/**
 * The route controller's configuration for this world's router and network, talking to a Kubernetes
 * API at `apiUrl` (an hour's interval: only events or a test's step() reconcile).
 */
export function kubeControllerConfig(
  kube: Partial<KubernetesConfig> & { apiUrl: string },
  over: Partial<ControllerConfig> = {},
): ControllerConfig {
  return {
    credentials: { auth: ADMIN },
    cluster: "default",
    routerId: ROUTER,
    networks: [NET],
    intervalMs: 3_600_000,
    aggregate: false,
    apply: "auto",
    ...over,
    kubernetes: {
      enabled: true,
      leaseName: "vrc",
      leaseNamespace: "kube-system",
      leaseDurationMs: 15_000,
      renewMs: 5_000,
      events: false,
      watchPods: false,
      ...kube,
    },
  };
}

export interface RouteWorld {
  em: Emulator;
  c: Clients;
  vms: VmPort[];
  ipamCfg: IpamConfig;
  addPods(vm: number, n: number, opts?: { blocks?: number; cluster?: string }): Promise<string[]>;
  removePod(vm: number, ip: string): Promise<void>;
  controller(
    over?: Partial<ControllerConfig>,
    opts?: { fetch?: HttpFetch; logLines?: string[] },
  ): { r: Reconciler; metrics: Metrics; clients: Clients };
}

export async function routeWorld(opts: {
  vms: number;
  cidr?: string;
  config?: Partial<EmulatorConfig>;
}): Promise<RouteWorld> {
  const cidr = opts.cidr ?? "10.10.10.0/24";
  const base = cidr.split("/")[0]!.split(".").slice(0, 3).join(".");
  const em = new Emulator({ config: opts.config ?? {} });
  applySeed(em, {
    networks: [{ id: NET, name: "pods", subnets: [{ id: SUBNET, name: "pods-v4", cidr }] }],
    routers: [{ id: ROUTER, name: "r1", interfaces: ["pods-v4"] }],
    servers: Array.from({ length: opts.vms }, (_, i) => ({
      id: server(i + 1),
      name: `vm${i + 1}`,
      ports: [{ network: "pods", ip: `${base}.${11 + i}` }],
    })),
  });
  const c = createClients({ auth: ADMIN, fetch: em.fetch, clock: systemClock });
  const vms: VmPort[] = Array.from({ length: opts.vms }, (_, i) => {
    const p = Object.values(em.world.ports).find((x) => x.device_id === server(i + 1))!;
    return {
      portId: p.id,
      networkId: NET,
      mac: p.mac_address,
      serverId: server(i + 1),
      hostIf: "eth0",
      nodeIp: p.fixed_ips[0]!.ip_address,
    };
  });
  const ipamCfg = {
    cluster: "default",
    mode: "mix",
    networks: [NET],
    subnets: [],
    routes: [],
    credentials: { auth: ADMIN },
    metadataUrl: null,
    stateDir: "/nonexistent",
    dmiUuidPath: "/nonexistent",
    configDrivePaths: [],
    timeouts: { apiMs: 5000, nicMs: 5000, detachMs: 5000, lockMs: 5000 },
    conflictAttempts: 10,
    coolDownMs: 0,
    pool: { warm: 0, minimum: 0, maximum: 0, deadlineMs: 0 },
    unknownKeys: [],
  } as IpamConfig;
  // No ledger here: these tests look at the router, not at a node's records.
  const noIntent = { write: () => {}, clear: () => {}, known: () => false };
  return {
    em,
    c,
    vms,
    ipamCfg,
    // What tcnp-ipam does for each pod (mix mode), optionally from per-node blocks.
    async addPods(vm, n, o = {}) {
      const cfg: IpamConfig = {
        ...ipamCfg,
        ...(o.blocks === undefined ? {} : { nodeBlockPrefix: o.blocks }),
        ...(o.cluster === undefined ? {} : { cluster: o.cluster }),
      };
      const d = {
        cfg,
        neutron: c.neutron,
        clock: systemClock,
        log: nullLogger,
        ...(o.blocks === undefined ? {} : { chooseEntries: blockChooser(cfg, c.neutron, nullLogger) }),
      };
      const ips: string[] = [];
      const subnet = (await c.neutron.listSubnets({ network_id: NET })).find((x) => x.ip_version === 4)!;
      for (let i = 0; i < n; i++) ips.push(...(await addMany(d, vms[vm]!, subnet, noIntent, 1)));
      return ips;
    },
    async removePod(vm, ip) {
      await removeAddresses(
        { neutron: c.neutron, cfg: ipamCfg, clock: systemClock, log: nullLogger },
        vms[vm]!.portId,
        (f) => f.ip_address === ip,
      );
    },
    controller(over = {}, o = {}) {
      const clients = createClients({ auth: ADMIN, fetch: o.fetch ?? em.fetch, clock: systemClock });
      const metrics = new Metrics();
      const cfg: ControllerConfig = {
        credentials: { auth: ADMIN },
        cluster: "default",
        routerId: ROUTER,
        networks: [NET],
        intervalMs: 1000,
        aggregate: true,
        apply: "auto",
        kubernetes: {
          enabled: false,
          leaseName: "l",
          leaseNamespace: "n",
          leaseDurationMs: 15000,
          renewMs: 5000,
          events: false,
          watchPods: false,
        },
        ...over,
      };
      const log = o.logLines === undefined ? nullLogger : createLogger({ write: (l) => void o.logLines!.push(l) });
      void memorySink;
      return {
        r: new Reconciler({
          cfg,
          neutron: clients.neutron,
          session: clients.session,
          nova: clients.nova,
          log,
          clock: systemClock,
          metrics,
        }),
        metrics,
        clients,
      };
    },
  };
}
