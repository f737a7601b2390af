// Nova in the emulator: servers (boot with ports, show, list, delete) and os-interface, whose attach
// answers synchronously and whose detach is an asynchronous cast answered with 202.
import { randomUUID } from "node:crypto";
import type { InterfaceAttachment, Port } from "../openstack/types.js";
import type { Emulator } from "./emulator.js";
import { ApiError, empty, json, route, type Ctx, type Route } from "./http-kit.js";
import { isAdmin, obj, touch, token, type J } from "./neutron-kit.js";
import { createPort, deletePortRecord } from "./neutron-ports.js";
import type { ServerRec } from "./world.js";

const attachment = (p: Port): InterfaceAttachment => ({
  port_id: p.id,
  net_id: p.network_id,
  mac_addr: p.mac_address,
  port_state: p.status,
  fixed_ips: p.fixed_ips.map((f) => ({ subnet_id: f.subnet_id, ip_address: f.ip_address })),
});

export function bindPort(em: Emulator, server: ServerRec, port: Port): void {
  port.device_id = server.id;
  port.device_owner = "compute:nova";
  (port as Port & J)["binding:host_id"] = "tcnp-emulator";
  (port as Port & J)["binding:vif_type"] = "ovs";
  port.status = "ACTIVE";
  touch(em, port);
}

function unbindPort(em: Emulator, port: Port): void {
  port.device_id = "";
  port.device_owner = "";
  (port as Port & J)["binding:host_id"] = "";
  (port as Port & J)["binding:vif_type"] = "unbound";
  port.status = "DOWN";
  touch(em, port);
}

export function serverPorts(em: Emulator, id: string): Port[] {
  return Object.values(em.world.ports).filter((p) => p.device_id === id && p.device_owner.startsWith("compute:"));
}

function serverView(em: Emulator, s: ServerRec): J {
  const addresses: Record<string, J[]> = {};
  for (const p of serverPorts(em, s.id)) {
    const name = em.world.networks[p.network_id]?.name ?? p.network_id;
    addresses[name] = [
      ...(addresses[name] ?? []),
      ...p.fixed_ips.map((f) => ({
        version: f.ip_address.includes(":") ? 6 : 4,
        addr: f.ip_address,
        "OS-EXT-IPS:type": "fixed",
        "OS-EXT-IPS-MAC:mac_addr": p.mac_address,
      })),
    ];
  }
  const when = new Date(s.created).toISOString().replace(/\.\d{3}Z$/, "Z");
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    tenant_id: s.project_id,
    user_id: s.user_id,
    addresses,
    metadata: s.metadata,
    created: when,
    updated: when,
    links: [],
    "OS-EXT-STS:vm_state": s.status === "ACTIVE" ? "active" : "building",
    locked: s.locked,
  };
}

export function createServer(em: Emulator, projectId: string, userId: string, b: J): ServerRec {
  const name = typeof b["name"] === "string" ? b["name"] : "";
  if (name === "")
    throw new ApiError(400, "badRequest", "Invalid input for field/attribute name. Value: . '' is too short");
  const s: ServerRec = {
    id: typeof b["id"] === "string" ? b["id"] : randomUUID(),
    name,
    status: "ACTIVE",
    project_id: projectId,
    user_id: userId,
    created: em.now(),
    owned_ports: [],
    locked: false,
    pci_slots: em.config.pciSlots,
    metadata: (obj(b["metadata"]) as Record<string, string> | undefined) ?? {},
  };
  const nets = Array.isArray(b["networks"]) ? (b["networks"] as unknown[]) : [];
  const ports: Port[] = [];
  for (const n of nets) {
    const o = obj(n) ?? {};
    if (typeof o["port"] === "string") {
      const p = em.world.ports[o["port"]];
      if (p === undefined) throw new ApiError(400, "badRequest", `Port ${o["port"]} could not be found.`);
      if (p.device_id !== "") throw new ApiError(409, "conflictingRequest", `Port ${p.id} is still in use.`);
      ports.push(p);
    } else if (typeof o["uuid"] === "string") {
      const fixed = typeof o["fixed_ip"] === "string" ? { fixed_ips: [{ ip_address: o["fixed_ip"] }] } : {};
      const p = createPort(
        em,
        { id: "", user_id: userId, project_id: projectId, roles: ["admin"], methods: [], issued_at: 0, expires_at: 0 },
        { network_id: o["uuid"], ...fixed },
      );
      s.owned_ports.push(p.id);
      ports.push(p);
    }
  }
  em.world.servers[s.id] = s;
  for (const p of ports) bindPort(em, s, p);
  return s;
}

function getServer(em: Emulator, c: Ctx): ServerRec {
  const t = token(em, c);
  const s = em.world.servers[c.params[0]!];
  if (s === undefined || (!isAdmin(t) && s.project_id !== t.project_id))
    throw new ApiError(404, "itemNotFound", `Instance ${c.params[0]} could not be found.`);
  return s;
}

function attach(em: Emulator, c: Ctx): ReturnType<typeof json> {
  const s = getServer(em, c);
  const ia = obj(obj(c.body)?.["interfaceAttachment"]);
  if (ia === undefined)
    throw new ApiError(
      400,
      "badRequest",
      "Invalid input for field/attribute interfaceAttachment. Value: None. None is not of type 'object'",
    );
  const extra = Object.keys(ia).filter((k) => !["port_id", "net_id", "fixed_ips", "tag"].includes(k));
  if (extra.length > 0)
    throw new ApiError(
      400,
      "badRequest",
      `Invalid input for field/attribute interfaceAttachment. Value: ${JSON.stringify(ia)}. Additional properties are not allowed ('${extra[0]}' was unexpected)`,
    );
  if (ia["port_id"] !== undefined && ia["net_id"] !== undefined)
    throw new ApiError(400, "badRequest", "Must not input both network_id and port_id");
  if (s.locked) throw new ApiError(409, "conflictingRequest", `Instance ${s.id} is locked`);
  let port: Port;
  if (typeof ia["port_id"] === "string") {
    const p = em.world.ports[ia["port_id"]];
    if (p === undefined) throw new ApiError(404, "itemNotFound", `Port id ${ia["port_id"]} could not be found.`);
    if (p.device_id !== "") throw new ApiError(409, "conflictingRequest", `Port ${p.id} is still in use.`);
    if (p.project_id !== s.project_id)
      throw new ApiError(400, "badRequest", `Port ${p.id} not usable for instance ${s.id}.`);
    port = p;
  } else if (typeof ia["net_id"] === "string") {
    port = createPort(
      em,
      {
        id: "",
        user_id: s.user_id,
        project_id: s.project_id,
        roles: ["admin"],
        methods: [],
        issued_at: 0,
        expires_at: 0,
      },
      { network_id: ia["net_id"] },
    );
    s.owned_ports.push(port.id);
  } else {
    throw new ApiError(400, "badRequest", "Invalid input for field/attribute interfaceAttachment.");
  }
  if (s.pci_slots <= 0) throw new ApiError(500, "computeFault", `Failed to attach network adapter device to ${s.id}`);
  s.pci_slots--;
  bindPort(em, s, port);
  const noNic = em.takeFault("compute", "POST", c.path, ["no-nic"]) !== undefined;
  if (!noNic && em.hooks.attach !== undefined) {
    const hook = em.hooks.attach;
    const bound = port;
    void em.track(em.delay(em.config.nicAppearDelayMs).then(() => hook(s, bound)));
  }
  return json(200, { interfaceAttachment: attachment(port) }, { "x-openstack-request-id": `req-${randomUUID()}` });
}

function detach(em: Emulator, c: Ctx): ReturnType<typeof empty> {
  const s = getServer(em, c);
  if (s.locked) throw new ApiError(409, "conflictingRequest", `Instance ${s.id} is locked`);
  const portId = c.params[1]!;
  // A cast: answered at once, done later; a port that is not attached still gets 202.
  void em.track(
    em.delay(em.config.detachDelayMs).then(async () => {
      const p = em.world.ports[portId];
      if (p === undefined || p.device_id !== s.id) return;
      s.pci_slots++;
      if (s.owned_ports.includes(p.id)) {
        s.owned_ports = s.owned_ports.filter((x) => x !== p.id);
        deletePortRecord(em, p);
      } else {
        unbindPort(em, p);
        if (em.hooks.detach !== undefined) await em.hooks.detach(s, p);
      }
      em.persist();
    }),
  );
  return empty(202);
}

export function novaRoutes(em: Emulator): Route[] {
  return [
    route("GET", "/servers", (c) => {
      const t = token(em, c);
      return json(200, {
        servers: Object.values(em.world.servers)
          .filter((s) => isAdmin(t) || s.project_id === t.project_id)
          .map((s) => ({ id: s.id, name: s.name, links: [] })),
      });
    }),
    route("GET", "/servers/detail", (c) => {
      const t = token(em, c);
      return json(200, {
        servers: Object.values(em.world.servers)
          .filter((s) => isAdmin(t) || s.project_id === t.project_id)
          .map((s) => serverView(em, s)),
      });
    }),
    route("POST", "/servers", (c) => {
      const t = token(em, c);
      const b = obj(obj(c.body)?.["server"]);
      if (b === undefined) throw new ApiError(400, "badRequest", "Invalid input for field/attribute server.");
      const s = createServer(em, t.project_id, t.user_id, b);
      return json(202, {
        server: {
          id: s.id,
          links: [],
          adminPass: "",
          security_groups: [{ name: "default" }],
          "OS-DCF:diskConfig": "MANUAL",
        },
      });
    }),
    route("GET", "/servers/:id", (c) => json(200, { server: serverView(em, getServer(em, c)) })),
    route("DELETE", "/servers/:id", (c) => {
      const s = getServer(em, c);
      for (const p of serverPorts(em, s.id)) {
        if (s.owned_ports.includes(p.id)) deletePortRecord(em, p);
        else unbindPort(em, p);
      }
      delete em.world.servers[s.id];
      return empty(204);
    }),
    route("POST", "/servers/:id/os-interface", (c) => attach(em, c)),
    route("GET", "/servers/:id/os-interface", (c) =>
      json(200, { interfaceAttachments: serverPorts(em, getServer(em, c).id).map(attachment) }),
    ),
    route("GET", "/servers/:id/os-interface/:port", (c) => {
      const s = getServer(em, c);
      const p = serverPorts(em, s.id).find((x) => x.id === c.params[1]);
      if (p === undefined)
        throw new ApiError(404, "itemNotFound", `Instance ${s.id} does not have a port with id ${c.params[1]}`);
      return json(200, { interfaceAttachment: attachment(p) });
    }),
    route("DELETE", "/servers/:id/os-interface/:port", (c) => detach(em, c)),
  ];
}
