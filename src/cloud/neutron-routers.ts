// Routers (interfaces, gateway, extra routes with the route limit in both of its forms, the atomic
// add/remove extension) and floating IPs in the emulator.
import { randomUUID } from "node:crypto";
import { cidrContains, formatCidr, networkOf, parseCidr, parseIp, tryParseCidr, tryParseIp } from "../net/ip.js";
import type { FloatingIp, Port, Router, RouterRoute } from "../openstack/types.js";
import type { Emulator } from "./emulator.js";
import { ApiError, empty, json, nowNeutron, pyRepr, route, type Ctx, type Route } from "./http-kit.js";
import {
  bodyOf,
  checkIfMatch,
  filtered,
  isAdmin,
  notFound,
  obj,
  token,
  touch,
  visible,
  type J,
} from "./neutron-kit.js";
import { createPort, deletePortRecord } from "./neutron-ports.js";
import type { TokenRec } from "./world.js";

function routerPorts(em: Emulator, routerId: string): Port[] {
  return Object.values(em.world.ports).filter(
    (p) =>
      p.device_id === routerId &&
      (p.device_owner === "network:router_interface" || p.device_owner === "network:router_gateway"),
  );
}

function parseRoutes(v: unknown): RouterRoute[] {
  if (v === null) return [];
  if (!Array.isArray(v))
    throw new ApiError(
      400,
      "HTTPBadRequest",
      `Invalid input for routes. Reason: Invalid data format for hostroute: '${String(v)}'.`,
    );
  const out: RouterRoute[] = [];
  for (const item of v) {
    const o = obj(item);
    if (o === undefined || typeof o["destination"] !== "string" || typeof o["nexthop"] !== "string") {
      throw new ApiError(
        400,
        "HTTPBadRequest",
        `Invalid input for routes. Reason: Invalid data format for hostroute: '${pyRepr(item)}'.`,
      );
    }
    const dst = tryParseCidr(o["destination"]);
    if (dst === undefined)
      throw new ApiError(
        400,
        "HTTPBadRequest",
        `Invalid input for routes. Reason: '${o["destination"]}' is not a valid CIDR.`,
      );
    if (formatCidr(networkOf(dst)) !== formatCidr(dst)) {
      throw new ApiError(
        400,
        "HTTPBadRequest",
        `Invalid input for routes. Reason: '${o["destination"]}' isn't a recognized IP subnet cidr, '${formatCidr(networkOf(dst))}' is recommended.`,
      );
    }
    if (tryParseIp(o["nexthop"]) === undefined)
      throw new ApiError(
        400,
        "HTTPBadRequest",
        `Invalid input for routes. Reason: '${o["nexthop"]}' is not a valid IP address.`,
      );
    const r = { destination: o["destination"], nexthop: o["nexthop"] };
    if (out.some((x) => x.destination === r.destination && x.nexthop === r.nexthop)) {
      throw new ApiError(
        400,
        "HTTPBadRequest",
        `Invalid input for routes. Reason: Duplicate hostroute '${pyRepr(r)}'.`,
      );
    }
    out.push(r);
  }
  return out;
}

/** Validate a whole resulting route list for a router, as extraroute_db does. */
function validateRoutes(em: Emulator, router: Router, routes: RouterRoute[]): void {
  if (routes.length > em.config.routeLimit) {
    if (em.config.routeLimitMode === "OverQuota")
      throw new ApiError(409, "OverQuota", "Quota exceeded for resources: ['router_route'].");
    throw new ApiError(
      400,
      "RoutesExhausted",
      `Unable to complete operation for ${router.id}. The number of routes exceeds the maximum ${em.config.routeLimit}.`,
    );
  }
  const ports = routerPorts(em, router.id);
  const cidrs = ports
    .flatMap((p) => p.fixed_ips.map((f) => em.world.subnets[f.subnet_id]?.cidr))
    .filter((x): x is string => x !== undefined)
    .map(parseCidr);
  const own = new Set(ports.flatMap((p) => p.fixed_ips.map((f) => f.ip_address)));
  for (const r of routes) {
    const nh = parseIp(r.nexthop);
    if (!cidrs.some((c) => cidrContains(c, nh))) {
      throw new ApiError(
        400,
        "InvalidRoutes",
        `Invalid format for routes: ${pyRepr(routes)}, the nexthop is not connected with router`,
      );
    }
    if (own.has(r.nexthop))
      throw new ApiError(
        400,
        "InvalidRoutes",
        `Invalid format for routes: ${pyRepr(routes)}, the nexthop is used by router`,
      );
  }
}

async function setRoutes(em: Emulator, router: Router, routes: RouterRoute[]): Promise<void> {
  const same =
    routes.length === router.routes.length &&
    routes.every((r, i) => r.destination === router.routes[i]!.destination && r.nexthop === router.routes[i]!.nexthop);
  if (same) return;
  router.routes = routes;
  touch(em, router);
  if (em.hooks.routes !== undefined) await em.hooks.routes(router);
}

function addInterface(em: Emulator, t: TokenRec, router: Router, b: J): J {
  let port: Port | undefined;
  if (typeof b["subnet_id"] === "string") {
    const s = em.world.subnets[b["subnet_id"]];
    if (s === undefined || !visible(t, s)) throw notFound("Subnet", b["subnet_id"]);
    if (s.gateway_ip === null)
      throw new ApiError(400, "BadRequest", `Bad router request: Subnet for router interface must have a gateway IP.`);
    if (routerPorts(em, router.id).some((p) => p.fixed_ips.some((f) => f.subnet_id === s.id))) {
      throw new ApiError(400, "BadRequest", `Bad router request: Router already has a port on subnet ${s.id}.`);
    }
    port = createPort(
      em,
      { ...t, roles: [...t.roles, "admin"] },
      {
        network_id: s.network_id,
        fixed_ips: [{ subnet_id: s.id, ip_address: s.gateway_ip }],
        device_owner: "network:router_interface",
        device_id: router.id,
        project_id: router.project_id,
      },
    );
  } else if (typeof b["port_id"] === "string") {
    port = em.world.ports[b["port_id"]];
    if (port === undefined) throw notFound("Port", b["port_id"]);
    port.device_owner = "network:router_interface";
    port.device_id = router.id;
  } else {
    throw new ApiError(400, "BadRequest", "Bad router request: Either subnet_id or port_id must be specified.");
  }
  port.status = "ACTIVE";
  touch(em, router);
  const subnetIds = port.fixed_ips.map((f) => f.subnet_id);
  return {
    id: router.id,
    tenant_id: router.project_id,
    project_id: router.project_id,
    port_id: port.id,
    network_id: port.network_id,
    subnet_id: subnetIds[0],
    subnet_ids: subnetIds,
  };
}

function removeInterface(em: Emulator, router: Router, b: J): J {
  const subnetId = typeof b["subnet_id"] === "string" ? b["subnet_id"] : undefined;
  const port = routerPorts(em, router.id).find(
    (p) =>
      p.device_owner === "network:router_interface" &&
      ((subnetId !== undefined && p.fixed_ips.some((f) => f.subnet_id === subnetId)) || p.id === b["port_id"]),
  );
  if (port === undefined)
    throw new ApiError(
      404,
      "RouterInterfaceNotFoundForSubnet",
      `Router ${router.id} has no interface on subnet ${subnetId ?? ""}`,
    );
  const cidrs = port.fixed_ips.map((f) => parseCidr(em.world.subnets[f.subnet_id]!.cidr));
  const inUse = router.routes.find((r) => cidrs.some((c) => cidrContains(c, parseIp(r.nexthop))));
  if (inUse !== undefined) {
    throw new ApiError(
      409,
      "RouterInterfaceInUseByRoute",
      `Router interface for subnet ${port.fixed_ips[0]?.subnet_id} on router ${router.id} cannot be deleted, as it is required by one or more routes.`,
    );
  }
  delete em.world.ports[port.id];
  touch(em, router);
  return {
    id: router.id,
    port_id: port.id,
    subnet_id: port.fixed_ips[0]?.subnet_id,
    subnet_ids: port.fixed_ips.map((f) => f.subnet_id),
    tenant_id: router.project_id,
  };
}

function setGateway(em: Emulator, t: TokenRec, router: Router, gw: unknown): void {
  for (const p of routerPorts(em, router.id).filter((x) => x.device_owner === "network:router_gateway"))
    delete em.world.ports[p.id];
  if (gw === null || obj(gw) === undefined) {
    router.external_gateway_info = null;
    return;
  }
  const netId = String(obj(gw)!["network_id"] ?? "");
  const net = em.world.networks[netId];
  if (net === undefined) throw notFound("Network", netId);
  if (net["router:external"] !== true)
    throw new ApiError(400, "BadRequest", `Bad router request: Network ${netId} is not an external network.`);
  const port = createPort(
    em,
    { ...t, roles: [...t.roles, "admin"] },
    { network_id: netId, device_owner: "network:router_gateway", device_id: router.id, project_id: "" },
  );
  port.status = "ACTIVE";
  router.external_gateway_info = { network_id: netId, external_fixed_ips: port.fixed_ips, enable_snat: true };
}

export function routerRoutes(em: Emulator): Route[] {
  const get = (c: Ctx): Router => {
    const r = em.world.routers[c.params[0]!];
    if (r === undefined || !visible(token(em, c), r)) throw notFound("Router", c.params[0]!, false);
    return r;
  };
  const atomic = (c: Ctx, add: boolean): Promise<ReturnType<typeof json>> | ReturnType<typeof json> => {
    if (!em.config.extraRouteAtomic) throw new ApiError(404, "HTTPNotFound", "The resource could not be found.");
    const r = get(c);
    checkIfMatch(em, c, r, r, "routers");
    const given = parseRoutes(obj(bodyOf(c, "router"))?.["routes"] ?? []);
    const key = (x: RouterRoute): string => `${x.destination} ${x.nexthop}`;
    const next = add
      ? [...r.routes, ...given.filter((g) => !r.routes.some((x) => key(x) === key(g)))]
      : r.routes.filter((x) => !given.some((g) => key(g) === key(x)));
    validateRoutes(em, r, next);
    return setRoutes(em, r, next).then(() => json(200, { router: r }));
  };
  return [
    route("GET", "/v2.0/routers", (c) => {
      const t = token(em, c);
      return json(200, {
        routers: filtered(
          Object.values(em.world.routers).filter((r) => visible(t, r)),
          c.query,
        ),
      });
    }),
    route("POST", "/v2.0/routers", (c) => {
      const t = token(em, c);
      const b = bodyOf(c, "router");
      if (b["routes"] !== undefined)
        throw new ApiError(400, "HTTPBadRequest", "Attribute 'routes' not allowed in POST");
      const now = nowNeutron(em.now());
      const project = typeof b["project_id"] === "string" && isAdmin(t) ? b["project_id"] : t.project_id;
      const r: Router & J = {
        id: randomUUID(),
        name: typeof b["name"] === "string" ? b["name"] : "",
        status: "ACTIVE",
        admin_state_up: true,
        external_gateway_info: null,
        routes: [],
        project_id: project,
        tenant_id: project,
        revision_number: 1,
        tags: [],
        created_at: now,
        updated_at: now,
        ha: false,
        distributed: false,
      };
      em.world.routers[r.id] = r;
      if (b["external_gateway_info"] !== undefined) setGateway(em, t, r, b["external_gateway_info"]);
      return json(201, { router: r });
    }),
    route("GET", "/v2.0/routers/:id", (c) => json(200, { router: get(c) })),
    route("PUT", "/v2.0/routers/:id", async (c) => {
      const t = token(em, c);
      const r = get(c);
      const b = bodyOf(c, "router");
      checkIfMatch(em, c, r, r, "routers");
      if (b["external_gateway_info"] !== undefined) {
        setGateway(em, t, r, b["external_gateway_info"]);
        touch(em, r);
      }
      if (typeof b["name"] === "string" && b["name"] !== r.name) {
        r.name = b["name"];
        touch(em, r);
      }
      if (b["routes"] !== undefined) {
        const routes = parseRoutes(b["routes"]);
        validateRoutes(em, r, routes);
        await setRoutes(em, r, routes);
      }
      return json(200, { router: r });
    }),
    route("DELETE", "/v2.0/routers/:id", (c) => {
      const r = get(c);
      if (routerPorts(em, r.id).some((p) => p.device_owner === "network:router_interface")) {
        throw new ApiError(409, "RouterInUse", `Router ${r.id} still has ports`);
      }
      for (const p of routerPorts(em, r.id)) delete em.world.ports[p.id];
      delete em.world.routers[r.id];
      return empty(204);
    }),
    route("PUT", "/v2.0/routers/:id/add_router_interface", (c) =>
      json(200, addInterface(em, token(em, c), get(c), obj(c.body) ?? {})),
    ),
    route("PUT", "/v2.0/routers/:id/remove_router_interface", (c) =>
      json(200, removeInterface(em, get(c), obj(c.body) ?? {})),
    ),
    route("PUT", "/v2.0/routers/:id/add_extraroutes", (c) => atomic(c, true)),
    route("PUT", "/v2.0/routers/:id/remove_extraroutes", (c) => atomic(c, false)),
  ];
}

/** The data path follows the floating IPs of the routers a change touched. */
async function floatingIpsChanged(em: Emulator, routerIds: Array<string | null>): Promise<void> {
  if (em.hooks.floatingIps === undefined) return;
  for (const id of new Set(routerIds)) {
    const r = id === null ? undefined : em.world.routers[id];
    if (r === undefined) continue;
    await em.hooks.floatingIps(
      r,
      Object.values(em.world.floatingips).filter((f) => f.router_id === r.id),
    );
  }
}

const badFip = (msg: string): ApiError => new ApiError(400, "BadRequest", `Bad floatingip request: ${msg}.`);

function associate(em: Emulator, t: TokenRec, fip: FloatingIp, portId: unknown, fixedIp: unknown): void {
  if (portId === null || portId === undefined) {
    if (fixedIp !== undefined && fixedIp !== null)
      throw badFip("fixed_ip_address cannot be specified without a port_id");
    fip.port_id = null;
    fip.fixed_ip_address = null;
    fip.router_id = null;
    return;
  }
  const port = em.world.ports[String(portId)];
  if (port === undefined || !visible(t, port)) throw notFound("Port", String(portId));
  if (port.project_id !== fip.project_id && !isAdmin(t))
    throw badFip(
      `Cannot process floating IP association with Port ${port.id}, since that port is owned by a different project`,
    );
  const v4 = port.fixed_ips.filter((f) => !f.ip_address.includes(":"));
  let chosen;
  if (fixedIp === undefined || fixedIp === null) {
    if (v4.length > 1)
      throw badFip(
        `Port ${port.id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP`,
      );
    chosen = v4[0];
  } else {
    if (String(fixedIp).includes(":"))
      throw badFip(`Cannot process floating IP association with ${String(fixedIp)}, since that is not an IPv4 address`);
    chosen = v4.find((f) => f.ip_address === String(fixedIp));
    if (chosen === undefined) throw badFip(`Port ${port.id} does not have fixed ip ${String(fixedIp)}`);
  }
  if (chosen === undefined) throw badFip(`Port ${port.id} does not have any fixed IPv4 address`);
  const taken = Object.values(em.world.floatingips).find(
    (f) => f.id !== fip.id && f.port_id === port.id && f.fixed_ip_address === chosen.ip_address,
  );
  if (taken !== undefined) {
    throw new ApiError(
      409,
      "FloatingIPPortAlreadyAssociated",
      `Cannot associate floating IP ${fip.floating_ip_address} (${fip.id}) with port ${port.id} using fixed IP ${chosen.ip_address}, as that fixed IP already has a floating IP on external network ${fip.floating_network_id}.`,
    );
  }
  const router = Object.values(em.world.routers).find(
    (r) =>
      r.external_gateway_info?.network_id === fip.floating_network_id &&
      routerPorts(em, r.id).some(
        (p) =>
          p.device_owner === "network:router_interface" && p.fixed_ips.some((f) => f.subnet_id === chosen.subnet_id),
      ),
  );
  if (router === undefined) {
    throw new ApiError(
      404,
      "ExternalGatewayForFloatingIPNotFound",
      `External network ${fip.floating_network_id} is not reachable from subnet ${chosen.subnet_id}.  Therefore, cannot associate Port ${port.id} with a Floating IP.`,
    );
  }
  fip.port_id = port.id;
  fip.fixed_ip_address = chosen.ip_address;
  fip.router_id = router.id;
}

export function floatingIpRoutes(em: Emulator): Route[] {
  const get = (c: Ctx): FloatingIp => {
    const f = em.world.floatingips[c.params[0]!];
    if (f === undefined || !visible(token(em, c), f))
      throw new ApiError(404, "FloatingIPNotFound", `Floating IP ${c.params[0]} could not be found`);
    return f;
  };
  return [
    route("GET", "/v2.0/floatingips", (c) => {
      const t = token(em, c);
      return json(200, {
        floatingips: filtered(
          Object.values(em.world.floatingips).filter((f) => visible(t, f)),
          c.query,
        ),
      });
    }),
    route("GET", "/v2.0/floatingips/:id", (c) => json(200, { floatingip: get(c) })),
    route("POST", "/v2.0/floatingips", (c) => {
      const t = token(em, c);
      const b = bodyOf(c, "floatingip");
      const netId = String(b["floating_network_id"] ?? "");
      const net = em.world.networks[netId];
      if (net === undefined) throw notFound("Network", netId);
      if (net["router:external"] !== true) throw badFip(`Network ${netId} is not a valid external network`);
      const project = t.project_id;
      const port = createPort(
        em,
        { ...t, roles: [...t.roles, "admin"] },
        { network_id: netId, device_owner: "network:floatingip", project_id: "" },
      );
      const now = nowNeutron(em.now());
      const fip: FloatingIp & J = {
        id: randomUUID(),
        floating_ip_address: port.fixed_ips[0]!.ip_address,
        floating_network_id: netId,
        router_id: null,
        port_id: null,
        fixed_ip_address: null,
        status: "DOWN",
        project_id: project,
        tenant_id: project,
        revision_number: 1,
        tags: [],
        created_at: now,
        updated_at: now,
        description: typeof b["description"] === "string" ? b["description"] : "",
      };
      port.device_id = fip.id;
      try {
        associate(em, t, fip, b["port_id"], b["fixed_ip_address"]);
      } catch (e) {
        delete em.world.ports[port.id];
        throw e;
      }
      em.world.floatingips[fip.id] = fip;
      return floatingIpsChanged(em, [fip.router_id]).then(() => json(201, { floatingip: fip }));
    }),
    route("PUT", "/v2.0/floatingips/:id", (c) => {
      const t = token(em, c);
      const f = get(c);
      const b = bodyOf(c, "floatingip");
      checkIfMatch(em, c, f, f, "floatingips");
      const before = f.router_id;
      if ("port_id" in b) associate(em, t, f, b["port_id"], b["fixed_ip_address"]);
      if (typeof b["description"] === "string") f.description = b["description"];
      if ("port_id" in b || typeof b["description"] === "string") touch(em, f);
      return floatingIpsChanged(em, [before, f.router_id]).then(() => json(200, { floatingip: f }));
    }),
    route("DELETE", "/v2.0/floatingips/:id", (c) => {
      const f = get(c);
      const port = Object.values(em.world.ports).find(
        (p) => p.device_owner === "network:floatingip" && p.device_id === f.id,
      );
      if (port !== undefined) delete em.world.ports[port.id];
      delete em.world.floatingips[f.id];
      return floatingIpsChanged(em, [f.router_id]).then(() => empty(204));
    }),
  ];
}

// Re-exported for the seed loader.
export { addInterface, setGateway, deletePortRecord };
