// A declarative world for the emulator (`tcnp cloud --seed FILE`): identities, networks with fixed
// IDs (so the seed configurations work as written), routers, servers with their ports, and the
// data-path map the lab uses. Without a seed: one documented admin.
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import type { Emulator, EmulatorConfig } from "./emulator.js";
import { createNetwork, createSubnet } from "./neutron.js";
import { createPort } from "./neutron-ports.js";
import { addInterface, setGateway } from "./neutron-routers.js";
import { createServer } from "./nova.js";
import type { Router } from "../openstack/types.js";
import type { TokenRec } from "./world.js";

export interface SeedPort {
  network: string;
  subnet?: string;
  ip?: string;
  mac?: string;
  id?: string;
  name?: string;
  securityGroups?: string[];
}

export interface DataPathMap {
  /** network id or name → the namespace and bridge that carry it */
  networks?: Record<string, { netns: string; bridge: string }>;
  /** server id or name → the namespace that is the VM */
  servers?: Record<string, { netns: string }>;
  /** router id or name → the namespace that is the router (and its external interface, for floating IPs) */
  routers?: Record<string, { netns: string; external?: string }>;
}

export interface Seed {
  config?: Partial<EmulatorConfig>;
  /** Add user "admin" / password "secret" in project "admin" (default true). */
  defaultAdmin?: boolean;
  projects?: Array<{ name: string; id?: string }>;
  users?: Array<{ name: string; password: string; id?: string; project?: string; roles?: string[] }>;
  networks?: Array<{
    id?: string;
    name: string;
    shared?: boolean;
    external?: boolean;
    mtu?: number;
    project?: string;
    subnets?: Array<{
      id?: string;
      name: string;
      cidr: string;
      gateway_ip?: string | null;
      allocation_pools?: Array<{ start: string; end: string }>;
      enable_dhcp?: boolean;
    }>;
  }>;
  routers?: Array<{
    id?: string;
    name: string;
    project?: string;
    interfaces?: string[];
    external_network?: string;
    routes?: Array<{ destination: string; nexthop: string }>;
  }>;
  servers?: Array<{ id?: string; name: string; project?: string; ports: SeedPort[] }>;
  datapath?: DataPathMap;
}

export const DEFAULT_ADMIN = { user: "admin", password: "secret", project: "admin", domain: "Default" } as const;

function projectId(em: Emulator, nameOrId: string | undefined): string {
  const p = em.world.projects.find((x) => x.name === (nameOrId ?? DEFAULT_ADMIN.project) || x.id === nameOrId);
  if (p === undefined) throw new Error(`Cannot seed: unknown project "${nameOrId ?? DEFAULT_ADMIN.project}"`);
  return p.id;
}

const adminToken = (em: Emulator, project: string): TokenRec => ({
  id: "",
  user_id: em.world.users[0]?.id ?? "",
  project_id: project,
  roles: ["admin"],
  methods: [],
  issued_at: 0,
  expires_at: 0,
});

function ensureProject(em: Emulator, name: string, id?: string): string {
  const have = em.world.projects.find((p) => p.name === name);
  if (have !== undefined) return have.id;
  const p = { id: id ?? randomUUID().replace(/-/g, ""), name, domain_id: "default" };
  em.world.projects.push(p);
  return p.id;
}

function ensureUser(
  em: Emulator,
  u: { name: string; password: string; id?: string; project?: string; roles?: string[] },
): void {
  if (em.world.users.some((x) => x.name === u.name)) return;
  const id = u.id ?? randomUUID().replace(/-/g, "");
  em.world.users.push({ id, name: u.name, domain_id: "default", password: u.password, enabled: true });
  const pid = ensureProject(em, u.project ?? DEFAULT_ADMIN.project);
  for (const role of u.roles ?? ["member"]) em.world.assignments.push({ user_id: id, project_id: pid, role });
}

export function applySeed(em: Emulator, seed: Seed): void {
  if (seed.config !== undefined) em.config = { ...em.config, ...seed.config };
  if (seed.defaultAdmin !== false) {
    ensureProject(em, DEFAULT_ADMIN.project);
    ensureUser(em, {
      name: DEFAULT_ADMIN.user,
      password: DEFAULT_ADMIN.password,
      project: DEFAULT_ADMIN.project,
      roles: ["admin", "member", "reader"],
    });
  }
  for (const p of seed.projects ?? []) ensureProject(em, p.name, p.id);
  for (const u of seed.users ?? []) ensureUser(em, u);
  const netByName = new Map<string, string>();
  const subByName = new Map<string, string>();
  for (const n of seed.networks ?? []) {
    const pid = projectId(em, n.project);
    const body: Record<string, unknown> = {
      name: n.name,
      shared: n.shared === true,
      "router:external": n.external === true,
      project_id: pid,
    };
    if (n.id !== undefined) body["id"] = n.id;
    if (n.mtu !== undefined) body["mtu"] = n.mtu;
    const net = createNetwork(em, adminToken(em, pid), body);
    netByName.set(n.name, net.id);
    for (const s of n.subnets ?? []) {
      const sb: Record<string, unknown> = {
        network_id: net.id,
        name: s.name,
        cidr: s.cidr,
        enable_dhcp: s.enable_dhcp !== false,
      };
      if (s.id !== undefined) sb["id"] = s.id;
      if (s.gateway_ip !== undefined) sb["gateway_ip"] = s.gateway_ip;
      if (s.allocation_pools !== undefined) sb["allocation_pools"] = s.allocation_pools;
      subByName.set(s.name, createSubnet(em, adminToken(em, pid), sb).id);
    }
  }
  const net = (x: string): string => netByName.get(x) ?? x;
  const sub = (x: string): string => subByName.get(x) ?? x;
  for (const r of seed.routers ?? []) {
    const pid = projectId(em, r.project);
    const t = adminToken(em, pid);
    const id = r.id ?? randomUUID();
    const now = new Date(em.now()).toISOString().replace(/\.\d{3}Z$/, "Z");
    const router: Router = {
      id,
      name: r.name,
      status: "ACTIVE",
      admin_state_up: true,
      external_gateway_info: null,
      routes: [],
      project_id: pid,
      tenant_id: pid,
      revision_number: 1,
      tags: [],
    };
    Object.assign(router, { created_at: now, updated_at: now });
    em.world.routers[id] = router;
    if (r.external_network !== undefined) setGateway(em, t, router, { network_id: net(r.external_network) });
    for (const i of r.interfaces ?? []) addInterface(em, t, router, { subnet_id: sub(i) });
    if (r.routes !== undefined) router.routes = r.routes;
  }
  for (const s of seed.servers ?? []) {
    const pid = projectId(em, s.project);
    const t = adminToken(em, pid);
    const ports = s.ports.map((p) => {
      const body: Record<string, unknown> = { network_id: net(p.network) };
      if (p.ip !== undefined || p.subnet !== undefined)
        body["fixed_ips"] = [
          {
            ...(p.subnet === undefined ? {} : { subnet_id: sub(p.subnet) }),
            ...(p.ip === undefined ? {} : { ip_address: p.ip }),
          },
        ];
      if (p.mac !== undefined) body["mac_address"] = p.mac;
      if (p.name !== undefined) body["name"] = p.name;
      if (p.securityGroups !== undefined) body["security_groups"] = p.securityGroups;
      const port = createPort(em, t, body);
      if (p.id !== undefined) {
        delete em.world.ports[port.id];
        port.id = p.id;
        em.world.ports[p.id] = port;
      }
      return port.id;
    });
    createServer(em, pid, t.user_id, {
      name: s.name,
      ...(s.id === undefined ? {} : { id: s.id }),
      networks: ports.map((port) => ({ port })),
    });
  }
}

export function readSeedFile(file: string): Seed {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Seed;
  } catch (e) {
    throw new Error(`Cannot read seed file "${file}": ${(e as Error).message}`, { cause: e });
  }
}
