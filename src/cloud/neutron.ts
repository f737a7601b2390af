// Neutron v2.0 in the emulator: networks, subnets, security groups, extensions, tags, filtering,
// and the wiring of the port and router modules.
import { randomUUID } from "node:crypto";
import { addToIp, broadcastOf, formatIp, networkOf, parseCidr, tryParseCidr, tryParseIp } from "../net/ip.js";
import type { Network, Subnet } from "../openstack/types.js";
import type { Emulator } from "./emulator.js";
import { ApiError, empty, json, nowNeutron, route, type Ctx, type Route } from "./http-kit.js";
import {
  bodyOf,
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
import { portRoutes } from "./neutron-ports.js";
import { floatingIpRoutes, routerRoutes } from "./neutron-routers.js";
import type { TokenRec } from "./world.js";

function defaultPools(cidr: string, gateway: string | null): Array<{ start: string; end: string }> {
  const c = parseCidr(cidr);
  const first = addToIp(networkOf(c).ip, 1n);
  const last = c.ip.family === 4 ? addToIp(broadcastOf(c), -1n) : broadcastOf(c);
  const gw = gateway === null ? undefined : tryParseIp(gateway);
  if (gw === undefined || gw.value < first.value || gw.value > last.value)
    return [{ start: formatIp(first), end: formatIp(last) }];
  const pools: Array<{ start: string; end: string }> = [];
  if (gw.value > first.value) pools.push({ start: formatIp(first), end: formatIp(addToIp(gw, -1n)) });
  if (gw.value < last.value) pools.push({ start: formatIp(addToIp(gw, 1n)), end: formatIp(last) });
  return pools;
}

export function createNetwork(em: Emulator, t: TokenRec, b: J): Network {
  const now = nowNeutron(em.now());
  const id = typeof b["id"] === "string" && isAdmin(t) ? b["id"] : randomUUID();
  if (em.world.networks[id] !== undefined)
    throw new ApiError(
      409,
      "NetworkInUse",
      `Unable to complete operation on network ${id}. There are one or more ports still in use on the network.`,
    );
  const project = typeof b["project_id"] === "string" && isAdmin(t) ? b["project_id"] : t.project_id;
  const n: Network & J = {
    id,
    name: typeof b["name"] === "string" ? b["name"] : "",
    status: "ACTIVE",
    subnets: [],
    mtu: typeof b["mtu"] === "number" ? b["mtu"] : 1450,
    shared: b["shared"] === true,
    "router:external": b["router:external"] === true,
    port_security_enabled: b["port_security_enabled"] !== false,
    admin_state_up: true,
    project_id: project,
    tenant_id: project,
    revision_number: 1,
    tags: [],
    created_at: now,
    updated_at: now,
  };
  em.world.networks[id] = n;
  return n;
}

export function createSubnet(em: Emulator, t: TokenRec, b: J): Subnet {
  const netId = String(b["network_id"] ?? "");
  const net = em.world.networks[netId];
  if (net === undefined || !visible(t, net)) throw notFound("Network", netId);
  const cidrText = String(b["cidr"] ?? "");
  const cidr = tryParseCidr(cidrText);
  if (cidr === undefined)
    throw new ApiError(
      400,
      "HTTPBadRequest",
      `Invalid input for cidr. Reason: '${cidrText}' is not a valid IP subnet.`,
    );
  const ipVersion = cidr.ip.family;
  const normal = `${formatIp(networkOf(cidr).ip)}/${cidr.prefix}`;
  const gateway =
    b["gateway_ip"] === null
      ? null
      : typeof b["gateway_ip"] === "string"
        ? b["gateway_ip"]
        : formatIp(addToIp(networkOf(cidr).ip, 1n));
  const pools = Array.isArray(b["allocation_pools"])
    ? (b["allocation_pools"] as Array<{ start: string; end: string }>)
    : defaultPools(normal, gateway);
  const now = nowNeutron(em.now());
  const id = typeof b["id"] === "string" && isAdmin(t) ? b["id"] : randomUUID();
  const s: Subnet & J = {
    id,
    name: typeof b["name"] === "string" ? b["name"] : "",
    network_id: netId,
    cidr: normal,
    ip_version: ipVersion,
    gateway_ip: gateway,
    allocation_pools: pools,
    host_routes: [],
    dns_nameservers: Array.isArray(b["dns_nameservers"]) ? (b["dns_nameservers"] as string[]) : [],
    enable_dhcp: b["enable_dhcp"] !== false,
    project_id: net.project_id ?? t.project_id,
    tenant_id: net.project_id ?? t.project_id,
    revision_number: 1,
    tags: [],
    created_at: now,
    updated_at: now,
    subnetpool_id: null,
    ipv6_address_mode: null,
    ipv6_ra_mode: null,
    service_types: [],
    description: "",
  };
  em.world.subnets[id] = s;
  net.subnets.push(id);
  touch(em, net);
  return s;
}

const EXTENSIONS = (em: Emulator): Array<{ alias: string; name: string }> => [
  { alias: "router", name: "Neutron L3 Router" },
  { alias: "extraroute", name: "Neutron Extra Route" },
  ...(em.config.extraRouteAtomic ? [{ alias: "extraroute-atomic", name: "Atomically add/remove extra routes" }] : []),
  { alias: "revision-if-match", name: "If-Match constraints based on revision_number" },
  { alias: "standard-attr-revisions", name: "Resource revision numbers" },
  {
    alias: "standard-attr-tag",
    name: "Tag support for resources with standard attribute: port, subnet, network, router, floatingip, ...",
  },
  ...(em.config.tagsOnCreate
    ? [{ alias: "tag-ports-during-bulk-creation", name: "Tag Ports During Bulk Creation" }]
    : []),
  { alias: "external-net", name: "Neutron external network" },
  { alias: "binding", name: "Port Binding" },
  { alias: "allowed-address-pairs", name: "Allowed Address Pairs" },
  { alias: "port-security", name: "Port Security" },
  { alias: "security-group", name: "security-group" },
];

function tagRoutes(em: Emulator): Route[] {
  const COLLECTIONS: Record<string, keyof typeof em.world> = {
    ports: "ports",
    networks: "networks",
    subnets: "subnets",
    routers: "routers",
    floatingips: "floatingips",
  };
  const find = (c: Ctx): { tags: string[]; revision_number: number; updated_at?: string } => {
    const coll = COLLECTIONS[c.params[0]!];
    const r =
      coll === undefined
        ? undefined
        : (em.world[coll] as Record<string, { tags: string[]; revision_number: number; project_id?: string }>)[
            c.params[1]!
          ];
    if (r === undefined || !visible(token(em, c), r))
      throw new ApiError(404, "TagResourceNotFound", `Resource ${c.params[0]} ${c.params[1]} could not be found.`);
    return r;
  };
  const checkTag = (tag: string): void => {
    if (tag.length > 255)
      throw new ApiError(400, "InvalidInput", `Invalid input for operation: '${tag}' exceeds maximum length of 255.`);
  };
  return [
    route("GET", "/v2.0/:coll/:id/tags", (c) => json(200, { tags: find(c).tags })),
    route("PUT", "/v2.0/:coll/:id/tags", (c) => {
      const r = find(c);
      const tags = obj(c.body)?.["tags"];
      if (!Array.isArray(tags))
        throw new ApiError(400, "HTTPBadRequest", "Invalid input for tags. Reason: 'None' is not a list.");
      for (const t of tags) checkTag(String(t));
      if (tags.length > 50)
        throw new ApiError(
          400,
          "BadRequest",
          `Bad ${c.params[0]!.replace(/s$/, "")} request: The number of tags exceed the per-resource limit of 50.`,
        );
      r.tags = [...new Set(tags.map(String))];
      touch(em, r);
      return json(200, { tags: r.tags });
    }),
    route("GET", "/v2.0/:coll/:id/tags/:tag", (c) => {
      if (!find(c).tags.includes(c.params[2]!))
        throw new ApiError(404, "TagNotFound", `Tag ${c.params[2]} could not be found.`);
      return empty(204);
    }),
    route("PUT", "/v2.0/:coll/:id/tags/:tag", (c) => {
      const r = find(c);
      const tag = c.params[2]!;
      checkTag(tag);
      if (!r.tags.includes(tag)) {
        if (r.tags.length >= 50)
          throw new ApiError(
            400,
            "BadRequest",
            `Bad ${c.params[0]!.replace(/s$/, "")} request: The number of tags exceed the per-resource limit of 50.`,
          );
        r.tags.push(tag);
        touch(em, r);
      }
      return json(201, null);
    }),
    route("DELETE", "/v2.0/:coll/:id/tags/:tag", (c) => {
      const r = find(c);
      const i = r.tags.indexOf(c.params[2]!);
      if (i < 0) throw new ApiError(404, "TagNotFound", `Tag ${c.params[2]} could not be found.`);
      r.tags.splice(i, 1);
      touch(em, r);
      return empty(204);
    }),
    route("DELETE", "/v2.0/:coll/:id/tags", (c) => {
      const r = find(c);
      r.tags = [];
      touch(em, r);
      return empty(204);
    }),
  ];
}

export function neutronRoutes(em: Emulator): Route[] {
  return [
    route("GET", "/", () => json(200, { versions: [{ id: "v2.0", status: "CURRENT", links: [] }] })),
    route("GET", "/v2.0/extensions", () =>
      json(200, {
        extensions: EXTENSIONS(em).map((e) => ({
          ...e,
          description: e.name,
          updated: "2019-01-01T00:00:00-00:00",
          links: [],
        })),
      }),
    ),
    route("GET", "/v2.0/extensions/:alias", (c) => {
      const e = EXTENSIONS(em).find((x) => x.alias === c.params[0]);
      if (e === undefined) throw new ApiError(404, "HTTPNotFound", "The resource could not be found.");
      return json(200, { extension: { ...e, description: e.name, updated: "2019-01-01T00:00:00-00:00", links: [] } });
    }),
    route("GET", "/v2.0/networks", (c) => {
      const t = token(em, c);
      return json(200, {
        networks: filtered(
          Object.values(em.world.networks).filter((n) => visible(t, n)),
          c.query,
        ),
      });
    }),
    route("POST", "/v2.0/networks", (c) =>
      json(201, { network: createNetwork(em, token(em, c), bodyOf(c, "network")) }),
    ),
    route("GET", "/v2.0/networks/:id", (c) => {
      const n = em.world.networks[c.params[0]!];
      if (n === undefined || !visible(token(em, c), n)) throw notFound("Network", c.params[0]!);
      return json(200, { network: n });
    }),
    route("DELETE", "/v2.0/networks/:id", (c) => {
      const id = c.params[0]!;
      const n = em.world.networks[id];
      if (n === undefined || !visible(token(em, c), n)) throw notFound("Network", id);
      const inUse = Object.values(em.world.ports).some((p) => p.network_id === id && p.device_owner !== "network:dhcp");
      if (inUse)
        throw new ApiError(
          409,
          "NetworkInUse",
          `Unable to complete operation on network ${id}. There are one or more ports still in use on the network.`,
        );
      for (const s of n.subnets) delete em.world.subnets[s];
      delete em.world.networks[id];
      return empty(204);
    }),
    route("GET", "/v2.0/subnets", (c) => {
      const t = token(em, c);
      return json(200, {
        subnets: filtered(
          Object.values(em.world.subnets).filter((s) =>
            visible(t, { ...s, shared: em.world.networks[s.network_id]?.shared === true }),
          ),
          c.query,
        ),
      });
    }),
    route("POST", "/v2.0/subnets", (c) => json(201, { subnet: createSubnet(em, token(em, c), bodyOf(c, "subnet")) })),
    route("GET", "/v2.0/subnets/:id", (c) => {
      const s = em.world.subnets[c.params[0]!];
      if (s === undefined || !visible(token(em, c), { ...s, shared: em.world.networks[s.network_id]?.shared === true }))
        throw notFound("Subnet", c.params[0]!);
      return json(200, { subnet: s });
    }),
    route("DELETE", "/v2.0/subnets/:id", (c) => {
      const id = c.params[0]!;
      const s = em.world.subnets[id];
      if (s === undefined || !visible(token(em, c), s)) throw notFound("Subnet", id);
      if (Object.values(em.world.ports).some((p) => p.fixed_ips.some((f) => f.subnet_id === id))) {
        throw new ApiError(
          409,
          "SubnetInUse",
          `Unable to complete operation on subnet ${id}: One or more ports have an IP allocation from this subnet.`,
        );
      }
      const net = em.world.networks[s.network_id];
      if (net !== undefined) net.subnets = net.subnets.filter((x) => x !== id);
      delete em.world.subnets[id];
      return empty(204);
    }),
    route("GET", "/v2.0/security-groups", (c) => {
      const t = token(em, c);
      defaultSecurityGroup(em, t.project_id);
      return json(200, {
        security_groups: filtered(
          Object.values(em.world.securityGroups).filter((g) => visible(t, g)),
          c.query,
        ),
      });
    }),
    ...tagRoutes(em),
    ...portRoutes(em),
    ...routerRoutes(em),
    ...floatingIpRoutes(em),
  ];
}
