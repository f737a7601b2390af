// The metadata service: the requester is known by its source address (as Neutron's metadata proxy
// resolves network + source IP → port → device_id), and answers with that server's document.
import type { Emulator } from "./emulator.js";
import { ApiError, json, route, type Ctx, type Route } from "./http-kit.js";
import { serverPorts } from "./nova.js";
import type { ServerRec } from "./world.js";

function requester(em: Emulator, c: Ctx): ServerRec {
  const addr = (c.req.headers["x-forwarded-for"] ?? c.req.remoteAddress ?? "")
    .split(",")[0]!
    .trim()
    .replace(/^::ffff:/, "");
  const port = Object.values(em.world.ports).find(
    (p) => p.device_owner.startsWith("compute:") && p.fixed_ips.some((f) => f.ip_address === addr),
  );
  const server = port === undefined ? undefined : em.world.servers[port.device_id];
  if (server === undefined) throw new ApiError(404, "NotFound", "The resource could not be found.");
  return server;
}

export function metadataRoutes(em: Emulator): Route[] {
  const doc = (c: Ctx): ReturnType<typeof json> => {
    const s = requester(em, c);
    return json(200, {
      uuid: s.id,
      name: s.name,
      hostname: s.name,
      launch_index: 0,
      availability_zone: "nova",
      project_id: s.project_id,
      meta: s.metadata,
      public_keys: {},
      keys: [],
      devices: [],
      random_seed: "",
    });
  };
  return [
    route("GET", "/latest/meta_data.json", doc),
    route("GET", "/:date/meta_data.json", doc),
    route("GET", "/latest/network_data.json", (c) => {
      const s = requester(em, c);
      const ports = serverPorts(em, s.id);
      return json(200, {
        links: ports.map((p) => ({
          id: `tap${p.id.slice(0, 11)}`,
          vif_id: p.id,
          ethernet_mac_address: p.mac_address,
          mtu: em.world.networks[p.network_id]?.mtu ?? 1500,
          type: "ovs",
        })),
        networks: ports.flatMap((p) =>
          p.fixed_ips.map((f, i) => ({
            id: `network${i}`,
            link: `tap${p.id.slice(0, 11)}`,
            network_id: p.network_id,
            type: "ipv4_dhcp",
            ip_address: f.ip_address,
          })),
        ),
        services: [],
      });
    }),
  ];
}
