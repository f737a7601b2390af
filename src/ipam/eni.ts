// eni mode's cloud work: each pod gets a Neutron port of its own, hot-plugged into the VM with Nova
// and found in the VM by its MAC; these are the calls that make, find and remove such ports.
import { HOST, type Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import { isOpenStackError } from "../openstack/errors.js";
import type { Neutron } from "../openstack/neutron.js";
import type { Nova } from "../openstack/nova.js";
import type { Port } from "../openstack/types.js";
import type { Clock } from "../base/clock.js";
import type { IpamConfig } from "./config.js";
import { containerTag, ENI_TAG, eniDescription, eniOwnerOf, ifnameTag, legacyEniDescription, nodeTag } from "./tags.js";

export interface EniDeps {
  cfg: IpamConfig;
  neutron: Neutron;
  nova: Nova;
  kernel: Kernel;
  clock: Clock;
  log: Logger;
}

/** A port name that says whose it is: tcnp-<namespace>-<pod>, else tcnp-<container ID prefix>. */
export function portName(containerId: string, pod: ReadonlyMap<string, string>): string {
  const ns = pod.get("K8S_POD_NAMESPACE");
  const name = pod.get("K8S_POD_NAME");
  return (ns !== undefined && name !== undefined ? `tcnp-${ns}-${name}` : `tcnp-${containerId.slice(0, 12)}`).slice(
    0,
    255,
  );
}

/** Wait until a link with `mac` appears in the VM; returns its name. */
export async function waitForNic(
  kernel: Kernel,
  mac: string,
  clock: Clock,
  timeoutMs: number,
): Promise<string | undefined> {
  const deadline = clock.now() + timeoutMs;
  const want = mac.toLowerCase();
  for (let wait = 20; ; wait = Math.min(wait * 2, 200)) {
    const link = (await kernel.listLinks(HOST)).find((l) => l.mac === want && l.master === undefined);
    if (link !== undefined) return link.name;
    if (clock.now() >= deadline) return undefined;
    await clock.sleep(wait);
  }
}

/** The security groups of a pod port: configured, else those of the VM's own port on the pods' network. */
export async function securityGroupsFor(d: EniDeps, serverId: string): Promise<string[] | undefined> {
  if (d.cfg.securityGroups !== undefined) return d.cfg.securityGroups;
  const own = await d.neutron.listPorts({ device_id: serverId });
  const primary = d.cfg.networks.map((n) => own.find((p) => p.network_id === n)).find((p) => p !== undefined) ?? own[0];
  return primary?.security_groups;
}

/**
 * Detach the port from its server (if attached) and wait for Nova to let go (at most
 * ipam.timeouts.detach). False: the port is gone.
 */
export async function detachPort(d: EniDeps, portId: string, serverId: string): Promise<boolean> {
  let port: Port;
  try {
    port = await d.neutron.getPort(portId);
  } catch (e) {
    if (isOpenStackError(e, "PortNotFound")) return false;
    throw e;
  }
  if (port.device_id !== "" && port.device_owner.startsWith("compute:")) {
    await d.nova.detachInterface(port.device_id || serverId, portId).catch((e: unknown) => {
      if (!isOpenStackError(e, undefined, 404)) throw e;
    });
    const deadline = d.clock.now() + d.cfg.timeouts.detachMs;
    while (d.clock.now() < deadline) {
      await d.clock.sleep(100);
      try {
        if ((await d.neutron.getPort(portId)).device_id === "") break;
      } catch (e) {
        if (isOpenStackError(e, "PortNotFound")) return false;
        throw e;
      }
    }
  }
  return true;
}

/** Detach (if attached), wait for Nova to let go, delete. Already-gone pieces are fine. */
export async function destroyPort(d: EniDeps, portId: string, serverId: string): Promise<void> {
  if (!(await detachPort(d, portId, serverId))) return;
  // Deleting a port Nova still holds is allowed: Neutron tells Nova, which unplugs it.
  await d.neutron.deletePort(portId).catch((e: unknown) => {
    if (!isOpenStackError(e, "PortNotFound")) throw e;
  });
}

/**
 * The ports of one pod attachment: tagged as its own, or described as its own (a port whose create
 * answer was lost has no tags yet), or carrying one of prevResult's MACs and tcnp's mark.
 */
export async function podPorts(
  d: Pick<EniDeps, "neutron">,
  containerId: string,
  ifname: string,
  serverId: string,
  macs: readonly string[] = [],
): Promise<Port[]> {
  const lists = await Promise.all([
    d.neutron.listPorts({ tags: `${containerTag(containerId)},${ifnameTag(ifname)}` }),
    d.neutron.listPorts({ description: eniDescription(containerId, ifname, serverId) }),
    d.neutron.listPorts({ description: legacyEniDescription(containerId, ifname) }),
    ...macs.map((m) => d.neutron.listPorts({ mac_address: m })),
  ]);
  const mine = (p: Port): boolean => {
    const o = eniOwnerOf(p);
    return o !== undefined && o.containerId === containerId && o.ifname === ifname;
  };
  const byId = new Map(
    lists
      .flat()
      .filter(mine)
      .map((p) => [p.id, p]),
  );
  return [...byId.values()];
}

/** Detach and delete every port of one pod attachment (see podPorts). Returns their IDs. */
export async function destroyPodPorts(
  d: EniDeps,
  containerId: string,
  ifname: string,
  serverId: string,
  macs: readonly string[] = [],
  spare: ReadonlySet<string> = new Set(),
): Promise<string[]> {
  const ports = (await podPorts(d, containerId, ifname, serverId, macs)).filter((p) => !spare.has(p.id));
  for (const p of ports) await destroyPort(d, p.id, serverId);
  return ports.map((p) => p.id);
}

/** This server's eni ports (tagged or described as on it), for GC. */
export async function serverEniPorts(
  d: Pick<EniDeps, "neutron" | "cfg">,
  serverId: string,
): Promise<Array<{ port: Port; containerId: string; ifname: string }>> {
  const lists = await Promise.all([
    d.neutron.listPorts({ tags: `${ENI_TAG},${nodeTag(serverId)}` }),
    ...d.cfg.networks.map((n) => d.neutron.listPorts({ network_id: n })),
  ]);
  const out = new Map<string, { port: Port; containerId: string; ifname: string }>();
  for (const p of lists.flat()) {
    const o = eniOwnerOf(p);
    if (o === undefined || o.serverId !== serverId || !d.cfg.networks.includes(p.network_id)) continue;
    out.set(p.id, { port: p, containerId: o.containerId, ifname: o.ifname });
  }
  return [...out.values()];
}
