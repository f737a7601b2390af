// The emulator's data-path hooks on a real (or fake) kernel, for the lab: a Nova attach plugs a NIC
// with the port's MAC into the VM's namespace, wired to the network's bridge; a detach unplugs it;
// router route changes become kernel routes in the router's namespace; floating IPs become NAT there.
import type { Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import type { FloatingIp, Port, Router } from "../openstack/types.js";
import type { DataPathHooks, Emulator } from "./emulator.js";
import type { DataPathMap } from "./seed.js";
import type { ServerRec } from "./world.js";

const nsPath = (name: string): string => (name.startsWith("/") ? name : `/var/run/netns/${name}`);
export const tapName = (portId: string): string => `tap${portId.replace(/-/g, "").slice(0, 11)}`;

function lookup<T>(map: Record<string, T> | undefined, id: string, name: string): T | undefined {
  return map?.[id] ?? map?.[name];
}

/** The name a hot-plugged NIC gets in the guest: the first free ensN (N ≥ 4, like udev on a q35 VM). */
async function guestName(kernel: Kernel, ns: string): Promise<string> {
  const names = new Set((await kernel.listLinks(ns)).map((l) => l.name));
  for (let n = 4; ; n++) if (!names.has(`ens${n}`)) return `ens${n}`;
}

/**
 * Plug a NIC with the port's MAC into the VM's namespace, wired to the network's bridge. Attaches
 * to one VM run one at a time, as a guest's udev names hot-plugged NICs one after the other:
 * concurrent ones would both pick the first free ensN.
 */
export function plugNic(...args: Parameters<typeof plugNicNow>): Promise<string> {
  const vm = args[2];
  const prev = plugQueues.get(vm) ?? Promise.resolve("");
  const next = prev.catch(() => "").then(() => plugNicNow(...args));
  plugQueues.set(vm, next);
  void next
    .finally(() => {
      if (plugQueues.get(vm) === next) plugQueues.delete(vm);
    })
    .catch(() => {});
  return next;
}

const plugQueues = new Map<string, Promise<string>>();

async function plugNicNow(
  kernel: Kernel,
  wire: { netns: string; bridge: string },
  vmNetns: string,
  port: Pick<Port, "id" | "mac_address">,
  mtu: number,
): Promise<string> {
  const tap = tapName(port.id);
  const name = await guestName(kernel, nsPath(vmNetns));
  await kernel.createVeth(nsPath(wire.netns), {
    name: tap,
    mtu,
    peer: { name, netns: nsPath(vmNetns), mac: port.mac_address, mtu },
  });
  await kernel.setLink(nsPath(wire.netns), tap, { master: wire.bridge, up: true });
  return name;
}

/** Make the router namespace's gateway routes exactly the router's static routes. */
export async function syncRouterRoutes(
  kernel: Kernel,
  routerNetns: string,
  routes: Router["routes"],
  log?: Logger,
  routerName = "",
): Promise<void> {
  const ns = nsPath(routerNetns);
  const want = new Map(routes.map((x) => [x.destination, x.nexthop]));
  const have = (await kernel.listRoutes(ns)).filter(
    (x) => x.gw !== undefined && x.dst !== "0.0.0.0/0" && x.proto !== "kernel",
  );
  for (const h of have) if (want.get(h.dst) !== h.gw) await kernel.deleteRoute(ns, { dst: h.dst, gw: h.gw! });
  for (const [dst, gw] of want) {
    if (have.some((h) => h.dst === dst && h.gw === gw)) continue;
    try {
      await kernel.replaceRoute(ns, { dst, gw });
    } catch (e) {
      log?.warn("cannot apply a router route in the data plane", { router: routerName, dst, gw, error: e });
    }
  }
}

export function kernelDataPath(em: Emulator, kernel: Kernel, map: DataPathMap, log?: Logger): DataPathHooks {
  return {
    async attach(server: ServerRec, port: Port): Promise<void> {
      const vm = lookup(map.servers, server.id, server.name);
      const net = em.world.networks[port.network_id];
      const wire = net === undefined ? undefined : lookup(map.networks, net.id, net.name);
      if (vm === undefined || wire === undefined) return;
      const name = await plugNic(kernel, wire, vm.netns, port, net?.mtu ?? 1500);
      log?.info("hot-plugged a NIC", { server: server.name, port: port.id, guestName: name, mac: port.mac_address });
    },
    async detach(server: ServerRec, port: Port): Promise<void> {
      const net = em.world.networks[port.network_id];
      const wire = net === undefined ? undefined : lookup(map.networks, net.id, net.name);
      if (wire === undefined) return;
      const gone = await kernel.deleteLink(nsPath(wire.netns), tapName(port.id));
      log?.info("unplugged a NIC", { server: server.name, port: port.id, existed: gone });
    },
    async routes(router: Router): Promise<void> {
      const r = lookup(map.routers, router.id, router.name);
      if (r === undefined) return;
      await syncRouterRoutes(kernel, r.netns, router.routes, log, router.name);
    },
    // What a Neutron L3 agent does for floating IPs: the router answers for each on its external
    // interface and NATs it to the fixed IP (in: DNAT; out: SNAT).
    async floatingIps(router: Router, fips: FloatingIp[]): Promise<void> {
      const r = lookup(map.routers, router.id, router.name);
      if (r?.external === undefined) return;
      const ns = nsPath(r.netns);
      const dev = r.external;
      const active = fips.filter((f) => f.fixed_ip_address !== null);
      const want = new Set(active.map((f) => `${f.floating_ip_address}/32`));
      const have = (await kernel.listAddresses(ns, dev)).filter((a) => a.cidr.endsWith("/32"));
      for (const a of have) if (!want.has(a.cidr)) await kernel.deleteAddress(ns, { cidr: a.cidr, dev });
      for (const cidr of want) if (!have.some((a) => a.cidr === cidr)) await kernel.addAddress(ns, { cidr, dev });
      await kernel.applyIptables(ns, {
        chains: [
          {
            table: "nat",
            name: "FIP-DNAT",
            rules: active.map((f) => `-d ${f.floating_ip_address}/32 -j DNAT --to-destination ${f.fixed_ip_address}`),
          },
          {
            table: "nat",
            name: "FIP-SNAT",
            rules: active.map(
              (f) => `-s ${f.fixed_ip_address}/32 -o ${dev} -j SNAT --to-source ${f.floating_ip_address}`,
            ),
          },
        ],
        jumps: [
          { table: "nat", chain: "PREROUTING", rule: "-j FIP-DNAT" },
          { table: "nat", chain: "POSTROUTING", rule: "-j FIP-SNAT" },
        ],
      });
      log?.info("floating IPs in the router's data path", {
        router: router.name,
        fips: active.map((f) => `${f.floating_ip_address}->${f.fixed_ip_address}`),
      });
    },
  };
}
