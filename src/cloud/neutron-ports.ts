// Neutron ports in the emulator, with Neutron's IPAM behaviour: the fixed_ips reconciliation of a
// PUT (match by address, reuse by subnet, release the rest), random choice among the first 1000
// free addresses of the first pool that has any, string-ordered fixed_ips, and the exact errors.
import { randomUUID } from "node:crypto";
import { broadcastOf, cidrContains, formatIp, networkOf, parseCidr, parseIp, tryParseIp } from "../net/ip.js";
import type { FixedIp, Port, Subnet } from "../openstack/types.js";
import type { Emulator } from "./emulator.js";
import { ApiError, empty, json, nowNeutron, route, type Route } from "./http-kit.js";
import {
  bodyOf,
  checkIfMatch,
  defaultSecurityGroup,
  filtered,
  isAdmin,
  notFound,
  obj,
  token,
  touch,
  visible,
  type J,
} from "./neutron-kit.js";
import type { TokenRec } from "./world.js";

const sortFixedIps = (ips: FixedIp[]): FixedIp[] =>
  [...ips].sort((a, b) =>
    a.ip_address < b.ip_address
      ? -1
      : a.ip_address > b.ip_address
        ? 1
        : a.subnet_id < b.subnet_id
          ? -1
          : a.subnet_id > b.subnet_id
            ? 1
            : 0,
  );

/** Every address in use on a subnet (ports, router interfaces, floating IPs are all ports). */
function usedOn(em: Emulator, subnetId: string, exceptPort?: string): Set<string> {
  const used = new Set<string>();
  for (const p of Object.values(em.world.ports)) {
    if (p.id === exceptPort) continue;
    for (const f of p.fixed_ips) if (f.subnet_id === subnetId) used.add(f.ip_address);
  }
  return used;
}

/** Pick an address like neutrondb_ipam: the first pool with free addresses, random among its first 1000. */
export function autoAllocate(
  em: Emulator,
  subnet: Subnet,
  alsoTaken: Set<string>,
  exceptPort?: string,
): string | undefined {
  const used = usedOn(em, subnet.id, exceptPort);
  for (const pool of subnet.allocation_pools) {
    const start = parseIp(pool.start);
    const end = parseIp(pool.end);
    const free: bigint[] = [];
    for (let v = start.value; v <= end.value && free.length < 1000; v++) {
      const s = formatIp({ family: start.family, value: v });
      if (!used.has(s) && !alsoTaken.has(s)) free.push(v);
    }
    if (free.length > 0) return formatIp({ family: start.family, value: free[Math.floor(em.random() * free.length)]! });
  }
  return undefined;
}

function validIpForSubnet(subnet: Subnet, ip: string): boolean {
  const addr = tryParseIp(ip);
  if (addr === undefined) return false;
  const c = parseCidr(subnet.cidr);
  if (!cidrContains(c, addr)) return false;
  if (addr.family === 4 && c.prefix < 31) {
    if (addr.value === networkOf(c).ip.value || addr.value === broadcastOf(c).value) return false;
  }
  return true;
}

type Requested = { subnet_id?: string; ip_address?: string };

function parseRequested(v: unknown): Requested[] {
  if (!Array.isArray(v))
    throw new ApiError(
      400,
      "HTTPBadRequest",
      `Invalid input for fixed_ips. Reason: Invalid data format for fixed IP: '${String(v)}'.`,
    );
  return v.map((e) => {
    const o = obj(e) ?? {};
    const r: Requested = {};
    if (typeof o["subnet_id"] === "string") r.subnet_id = o["subnet_id"];
    if (typeof o["ip_address"] === "string") r.ip_address = o["ip_address"];
    if (r.subnet_id === undefined && r.ip_address === undefined)
      throw new ApiError(
        400,
        "InvalidInput",
        "Invalid input for operation: IP allocation requires subnet_id or ip_address.",
      );
    return r;
  });
}

/** Neutron's `_get_changed_ips_for_port`, then allocation: the new fixed_ips of a port. */
export function reconcileFixedIps(
  em: Emulator,
  networkId: string,
  current: FixedIp[],
  requested: Requested[],
  portId?: string,
): { fixed: FixedIp[]; released: FixedIp[] } {
  const subnetOf = (r: Requested): Subnet => {
    if (r.subnet_id !== undefined) {
      const s = em.world.subnets[r.subnet_id];
      if (s === undefined) throw notFound("Subnet", r.subnet_id);
      if (s.network_id !== networkId) {
        throw new ApiError(
          400,
          "InvalidInput",
          `Invalid input for operation: Failed to create port on network ${networkId}, because fixed_ips included invalid subnet ${r.subnet_id}.`,
        );
      }
      return s;
    }
    const ip = r.ip_address!;
    const s = em.world.networks[networkId]?.subnets
      .map((id) => em.world.subnets[id]!)
      .find((x) => x !== undefined && validIpForSubnet(x, ip));
    if (s === undefined)
      throw new ApiError(
        400,
        "InvalidIpForNetwork",
        `IP address ${ip} is not a valid IP for any of the subnets on the specified network.`,
      );
    return s;
  };
  const claimed = new Set<number>();
  const result: FixedIp[] = [];
  const taken = new Set<string>();
  // Specific addresses first, then automatic ones (as Neutron orders them).
  for (const r of requested.filter((x) => x.ip_address !== undefined)) {
    const s = subnetOf(r);
    const ip = r.ip_address!;
    if (!validIpForSubnet(s, ip))
      throw new ApiError(400, "InvalidIpForSubnet", `IP address ${ip} is not a valid IP for the specified subnet.`);
    const norm = formatIp(parseIp(ip));
    const idx = current.findIndex((x, i) => !claimed.has(i) && x.ip_address === norm && x.subnet_id === s.id);
    if (idx >= 0) {
      claimed.add(idx);
    } else if (taken.has(norm) || usedOn(em, s.id, portId).has(norm)) {
      throw new ApiError(409, "IpAddressAlreadyAllocated", `IP address ${norm} already allocated in subnet ${s.id}`);
    }
    result.push({ subnet_id: s.id, ip_address: norm });
    taken.add(norm);
  }
  for (const r of requested.filter((x) => x.ip_address === undefined)) {
    const s = subnetOf(r);
    const idx = current.findIndex((x, i) => !claimed.has(i) && x.subnet_id === s.id && !taken.has(x.ip_address));
    if (idx >= 0) {
      claimed.add(idx);
      result.push(current[idx]!);
      taken.add(current[idx]!.ip_address);
      continue;
    }
    const ip = autoAllocate(em, s, taken, portId);
    if (ip === undefined)
      throw new ApiError(409, "IpAddressGenerationFailure", `No more IP addresses available on network ${networkId}.`);
    result.push({ subnet_id: s.id, ip_address: ip });
    taken.add(ip);
  }
  const released = current.filter((_, i) => !claimed.has(i));
  if (em.config.maxFixedIpsPerPort > 0 && result.length > em.config.maxFixedIpsPerPort) {
    throw new ApiError(
      400,
      "InvalidInput",
      "Invalid input for operation: Exceeded maximum amount of fixed ips per port.",
    );
  }
  return { fixed: sortFixedIps(result), released };
}

const macSuffix = (em: Emulator): string =>
  [0, 0, 0]
    .map(() =>
      Math.floor(em.random() * 256)
        .toString(16)
        .padStart(2, "0"),
    )
    .join(":");

// Like Neutron's base_mac generation: random, retried (mac_generation_retries = 16) until unused.
function freshMac(em: Emulator, networkId: string): string {
  const used = new Set(
    Object.values(em.world.ports)
      .filter((p) => p.network_id === networkId)
      .map((p) => p.mac_address),
  );
  for (let i = 0; i < 16; i++) {
    const mac = `fa:16:3e:${macSuffix(em)}`;
    if (!used.has(mac)) return mac;
  }
  throw new ApiError(409, "MacAddressGenerationFailure", `Unable to generate unique mac on network ${networkId}.`);
}

function ownerOfNetwork(em: Emulator, t: TokenRec, networkId: string): boolean {
  return isAdmin(t) || em.world.networks[networkId]?.project_id === t.project_id;
}

export function createPort(em: Emulator, t: TokenRec, b: J): Port {
  const netId = String(b["network_id"] ?? "");
  const net = em.world.networks[netId];
  if (net === undefined || !visible(t, net)) throw notFound("Network", netId);
  const project = typeof b["project_id"] === "string" && isAdmin(t) ? b["project_id"] : t.project_id;
  let requested: Requested[];
  if (b["fixed_ips"] === undefined) {
    // One address from the first IPv4 subnet that has one free.
    const v4 = net.subnets.map((id) => em.world.subnets[id]!).filter((s) => s !== undefined && s.ip_version === 4);
    const withFree = v4.find((s) => autoAllocate(em, s, new Set()) !== undefined);
    if (v4.length > 0 && withFree === undefined)
      throw new ApiError(409, "IpAddressGenerationFailure", `No more IP addresses available on network ${netId}.`);
    requested = withFree === undefined ? [] : [{ subnet_id: withFree.id }];
  } else {
    requested = parseRequested(b["fixed_ips"]);
    if (requested.some((r) => r.ip_address !== undefined) && !ownerOfNetwork(em, t, netId)) {
      throw new ApiError(
        403,
        "PolicyNotAuthorized",
        "(rule:create_port and (rule:create_port:fixed_ips and (rule:create_port:fixed_ips:subnet_id and rule:create_port:fixed_ips:ip_address))) is disallowed by policy",
      );
    }
  }
  const { fixed } = reconcileFixedIps(em, netId, [], requested);
  const now = nowNeutron(em.now());
  const sgs = Array.isArray(b["security_groups"])
    ? (b["security_groups"] as string[])
    : net.port_security_enabled === false
      ? []
      : [defaultSecurityGroup(em, project).id];
  for (const sg of sgs)
    if (em.world.securityGroups[sg] === undefined)
      throw new ApiError(404, "SecurityGroupNotFound", `Security group ${sg} does not exist`);
  const port: Port & J = {
    id: randomUUID(),
    name: typeof b["name"] === "string" ? b["name"] : "",
    description: typeof b["description"] === "string" ? b["description"] : "",
    network_id: netId,
    project_id: project,
    tenant_id: project,
    mac_address: typeof b["mac_address"] === "string" ? b["mac_address"].toLowerCase() : freshMac(em, netId),
    admin_state_up: b["admin_state_up"] !== false,
    status: "DOWN",
    device_id: typeof b["device_id"] === "string" ? b["device_id"] : "",
    device_owner: typeof b["device_owner"] === "string" ? b["device_owner"] : "",
    fixed_ips: fixed,
    allowed_address_pairs: [],
    security_groups: sgs,
    port_security_enabled: net.port_security_enabled !== false,
    "binding:host_id": typeof b["binding:host_id"] === "string" ? b["binding:host_id"] : "",
    "binding:vif_type": "unbound",
    "binding:vnic_type": "normal",
    revision_number: 1,
    tags: em.config.tagsOnCreate && Array.isArray(b["tags"]) ? (b["tags"] as string[]).map(String) : [],
    created_at: now,
    updated_at: now,
    ip_allocation: "immediate",
    extra_dhcp_opts: [],
    dns_name: "",
  };
  if (em.world.ports[port.id] !== undefined) throw new ApiError(409, "PortInUse", "Port id collision");
  if (Object.values(em.world.ports).some((p) => p.network_id === netId && p.mac_address === port.mac_address)) {
    throw new ApiError(
      409,
      "MacAddressInUse",
      `Unable to complete operation for network ${netId}. The mac address ${port.mac_address} is in use.`,
    );
  }
  em.world.ports[port.id] = port;
  return port;
}

const UPDATABLE = new Set([
  "name",
  "description",
  "fixed_ips",
  "security_groups",
  "admin_state_up",
  "device_id",
  "device_owner",
  "binding:host_id",
  "allowed_address_pairs",
  "port_security_enabled",
  "binding:profile",
  "binding:vnic_type",
  "extra_dhcp_opts",
  "dns_name",
  "mac_address",
]);
const READ_ONLY = new Set([
  "id",
  "network_id",
  "status",
  "revision_number",
  "created_at",
  "updated_at",
  "tags",
  "tenant_id",
  "project_id",
]);

function updatePort(em: Emulator, t: TokenRec, port: Port & J, b: J): void {
  const unknown = Object.keys(b).filter((k) => !UPDATABLE.has(k) && !READ_ONLY.has(k));
  if (unknown.length > 0)
    throw new ApiError(400, "HTTPBadRequest", `Unrecognized attribute(s) '${unknown.join(", ")}'`);
  const ro = Object.keys(b).find((k) => READ_ONLY.has(k));
  if (ro !== undefined) throw new ApiError(400, "HTTPBadRequest", `Cannot update read-only attribute ${ro}`);
  let changed = false;
  if (b["fixed_ips"] !== undefined) {
    if (!ownerOfNetwork(em, t, port.network_id)) {
      throw new ApiError(
        403,
        "PolicyNotAuthorized",
        "(rule:update_port and rule:update_port:fixed_ips) is disallowed by policy",
      );
    }
    const { fixed, released } = reconcileFixedIps(
      em,
      port.network_id,
      port.fixed_ips,
      parseRequested(b["fixed_ips"]),
      port.id,
    );
    const withFip = released.find((r) =>
      Object.values(em.world.floatingips).some((f) => f.port_id === port.id && f.fixed_ip_address === r.ip_address),
    );
    if (withFip !== undefined) {
      throw new ApiError(
        400,
        "BadRequest",
        `Bad port request: Cannot update the fixed_ips of the port ${port.id}, because its original fixed_ip has been associated to a floating ip.`,
      );
    }
    if (JSON.stringify(fixed) !== JSON.stringify(port.fixed_ips)) {
      port.fixed_ips = fixed;
      changed = true;
    }
  }
  for (const k of [
    "name",
    "description",
    "security_groups",
    "admin_state_up",
    "device_id",
    "device_owner",
    "binding:host_id",
    "allowed_address_pairs",
    "port_security_enabled",
    "mac_address",
    "dns_name",
  ]) {
    if (b[k] !== undefined && JSON.stringify(b[k]) !== JSON.stringify(port[k])) {
      port[k] = b[k];
      changed = true;
    }
  }
  if (changed) touch(em, port);
}

/** Remove a port and what hangs off it (floating IP associations; the guest's NIC via Nova). */
export function deletePortRecord(em: Emulator, port: Port): void {
  for (const f of Object.values(em.world.floatingips)) {
    if (f.port_id === port.id) {
      f.port_id = null;
      f.fixed_ip_address = null;
      f.router_id = null;
      touch(em, f);
    }
  }
  delete em.world.ports[port.id];
  const server = em.world.servers[port.device_id];
  if (server !== undefined && port.device_owner.startsWith("compute:")) {
    // Neutron tells Nova (network-vif-deleted); Nova unplugs the device from the guest.
    server.owned_ports = server.owned_ports.filter((p) => p !== port.id);
    if (em.hooks.detach !== undefined) void em.track(em.hooks.detach(server, port));
  }
}

export function portRoutes(em: Emulator): Route[] {
  const get = (t: TokenRec, id: string): Port & J => {
    const p = em.world.ports[id];
    if (p === undefined || !visible(t, p)) throw notFound("Port", id);
    return p as Port & J;
  };
  return [
    route("GET", "/v2.0/ports", (c) => {
      const t = token(em, c);
      const ports = Object.values(em.world.ports).filter((p) => visible(t, p));
      return json(200, {
        ports: filtered(ports, c.query, {
          fixed_ips: (p, values) => {
            const ips = values.filter((v) => v.startsWith("ip_address=")).map((v) => v.slice(11));
            const subs = values.filter((v) => v.startsWith("subnet_id=")).map((v) => v.slice(10));
            return (
              (ips.length === 0 || p.fixed_ips.some((f) => ips.includes(f.ip_address))) &&
              (subs.length === 0 || p.fixed_ips.some((f) => subs.includes(f.subnet_id)))
            );
          },
        }),
      });
    }),
    route("POST", "/v2.0/ports", (c) => json(201, { port: createPort(em, token(em, c), bodyOf(c, "port")) })),
    route("GET", "/v2.0/ports/:id", (c) => json(200, { port: get(token(em, c), c.params[0]!) })),
    route("PUT", "/v2.0/ports/:id", (c) => {
      const t = token(em, c);
      const p = get(t, c.params[0]!);
      const b = bodyOf(c, "port");
      checkIfMatch(em, c, p, p, "ports");
      updatePort(em, t, p, b);
      return json(200, { port: p });
    }),
    route("DELETE", "/v2.0/ports/:id", (c) => {
      const p = get(token(em, c), c.params[0]!);
      checkIfMatch(em, c, p, p, "ports");
      if (
        p.device_owner === "network:router_interface" ||
        p.device_owner === "network:router_gateway" ||
        p.device_owner === "network:floatingip"
      ) {
        throw new ApiError(
          409,
          "L3PortInUse",
          `Port ${p.id} has owner ${p.device_owner} and therefore cannot be deleted directly via the port API.`,
        );
      }
      deletePortRecord(em, p);
      return empty(204);
    }),
  ];
}
