// eni mode: each pod gets a Neutron port of its own, hot-plugged into the VM with Nova and found in
// the VM by its MAC. Any failure after the port exists detaches and deletes it: nothing is left.
import { CniError, CniCode, tryAgainLater } from "../cni/errors.js";
import { HOST, type Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import { parseCidr } from "../net/ip.js";
import { isOpenStackError, isTransient } from "../openstack/errors.js";
import type { Neutron } from "../openstack/neutron.js";
import type { Nova } from "../openstack/nova.js";
import type { Port, Subnet } from "../openstack/types.js";
import type { Clock } from "../base/clock.js";
import type { IpamConfig } from "./config.js";
import { candidateSubnets, stillCooling } from "./mix.js";
import { coolDown, type Allocation, type AllocationStore } from "./store.js";
import { containerTag, ENI_TAG, eniDescription, eniOwnerOf, ifnameTag, legacyEniDescription, nodeTag } from "./tags.js";

export interface EniDeps {
  cfg: IpamConfig;
  neutron: Neutron;
  nova: Nova;
  kernel: Kernel;
  store: AllocationStore;
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

async function securityGroupsFor(d: EniDeps, serverId: string): Promise<string[] | undefined> {
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

export async function eniAdd(
  d: EniDeps,
  who: { containerId: string; ifname: string; serverId: string; pod: ReadonlyMap<string, string> },
): Promise<Allocation> {
  const sgs = await securityGroupsFor(d, who.serverId);
  const tags = ["tcnp", ENI_TAG, containerTag(who.containerId), ifnameTag(who.ifname), nodeTag(who.serverId)];
  for (const networkId of d.cfg.networks) {
    for (const subnet of await candidateSubnets(d.neutron, d.cfg, networkId)) {
      const a = await addOnSubnet(d, who, networkId, subnet, sgs, tags);
      if (a !== undefined) return a;
    }
  }
  throw new CniError(
    CniCode.AddressExhausted,
    `No addresses left for pods: every subnet of ipam.neutronConf.networks [${d.cfg.networks.join(", ")}] is exhausted (409 IpAddressGenerationFailure)`,
  );
}

async function addOnSubnet(
  d: EniDeps,
  who: { containerId: string; ifname: string; serverId: string; pod: ReadonlyMap<string, string> },
  networkId: string,
  subnet: Subnet,
  sgs: string[] | undefined,
  tags: string[],
): Promise<Allocation | undefined> {
  const now = d.clock.now();
  const base: Allocation = {
    containerId: who.containerId,
    ifname: who.ifname,
    mode: "eni",
    state: "adding",
    pid: process.pid,
    serverId: who.serverId,
    networkId,
    subnetId: subnet.id,
    createdAt: now,
    updatedAt: now,
  };
  d.store.put(base);
  let port: Port;
  try {
    const body: Record<string, unknown> = {
      network_id: networkId,
      name: portName(who.containerId, who.pod),
      description: eniDescription(who.containerId, who.ifname, who.serverId),
      fixed_ips: [{ subnet_id: subnet.id }],
      // Kept where the cloud takes tags on create (tag-ports-during-bulk-creation); dropped elsewhere.
      tags,
    };
    if (sgs !== undefined) body["security_groups"] = sgs;
    port = await d.neutron.createPort(body);
  } catch (e) {
    if (isOpenStackError(e, "IpAddressGenerationFailure")) {
      d.store.delete(who.containerId, who.ifname);
      return undefined;
    }
    // The create may have committed with its answer lost: remove what it made now, found by its
    // description; if that fails too, the record stays and DEL or GC finishes the job.
    if (isTransient(e, { conflict: true })) {
      try {
        await destroyPodPorts(d, who.containerId, who.ifname, who.serverId);
        d.store.delete(who.containerId, who.ifname);
      } catch (ce) {
        d.log.warn("cannot tell whether a failed port create made a port; DEL or GC will look again", { error: ce });
      }
    } else d.store.delete(who.containerId, who.ifname);
    throw e;
  }
  const ip = port.fixed_ips.find((f) => f.subnet_id === subnet.id)?.ip_address;
  const rec: Allocation = {
    ...base,
    portId: port.id,
    mac: port.mac_address,
    ...(ip === undefined ? {} : { ip }),
    prefix: parseCidr(subnet.cidr).prefix,
  };
  d.store.put(rec);
  try {
    await d.neutron.setTags("ports", port.id, tags);
    await d.nova.attachInterface(who.serverId, port.id);
    const hostIfname = await waitForNic(d.kernel, port.mac_address, d.clock, d.cfg.timeouts.nicMs);
    if (hostIfname === undefined) {
      throw new CniError(
        CniCode.TryAgainLater,
        `Port ${port.id} (MAC ${port.mac_address}) was attached to server ${who.serverId} but no NIC with that MAC appeared in this VM within ${d.cfg.timeouts.nicMs / 1000} s (ipam.timeouts.nic)`,
      );
    }
    const active: Allocation = {
      ...rec,
      state: "active",
      hostIfname,
      updatedAt: d.clock.now(),
      ...(subnet.gateway_ip === null ? {} : { gateway: subnet.gateway_ip }),
      ...(subnet.dns_nameservers.length === 0 ? {} : { dns: subnet.dns_nameservers }),
    };
    d.store.put(active);
    return active;
  } catch (e) {
    d.log.warn("eni ADD failed after the port was created: detaching and deleting it", { port: port.id, error: e });
    try {
      await destroyPort(d, port.id, who.serverId);
      d.store.delete(who.containerId, who.ifname);
    } catch (ce) {
      d.store.put({ ...rec, state: "releasing", error: (ce as Error).message, updatedAt: d.clock.now() });
      d.log.error("cannot clean up the port of a failed ADD; recorded as a pending release", {
        port: port.id,
        error: ce,
      });
    }
    throw e;
  }
}

/**
 * Release a pod's port. An active one cools down first (ipam.coolDownSeconds): it is detached from
 * the VM at once (its PCI slot is free again) but kept in Neutron, holding its address, as a
 * cooling record of its own; a later DEL, GC or full-subnet ADD deletes it once due. Neutron could
 * otherwise hand the address straight to a new pod while other hosts' conntrack still sends the
 * old pod's flows to it.
 */
export async function eniRelease(d: EniDeps, a: Allocation): Promise<void> {
  const now = d.clock.now();
  if (stillCooling(a, now)) return;
  // A DEL whose detach failed is pending with the cool-down it was given: it still applies.
  const coolUntil = a.state === "active" ? now + d.cfg.coolDownMs : a.state === "releasing" ? a.coolUntil : undefined;
  try {
    if (coolUntil !== undefined && coolUntil > now && a.portId !== undefined && a.ip !== undefined) {
      if (await detachPort(d, a.portId, a.serverId)) {
        coolDown(d.store, a, a.ip, { coolUntil, now: d.clock.now(), detached: true });
        d.log.info("port detached; it keeps its address in Neutron while it cools down", {
          port: a.portId,
          ip: a.ip,
          seconds: Math.round((coolUntil - now) / 1000),
        });
        return;
      }
    } else if (a.portId !== undefined) await destroyPort(d, a.portId, a.serverId);
    // A create whose answer never came: the port, if any, is known by its description.
    else await destroyPodPorts(d, a.containerId, a.ifname, a.serverId);
    d.store.delete(a.containerId, a.ifname);
  } catch (e) {
    if (!isTransient(e, { conflict: true })) throw e;
    d.store.put({
      ...a,
      state: "releasing",
      ...(coolUntil === undefined ? {} : { coolUntil }),
      error: (e as Error).message,
      updatedAt: d.clock.now(),
    });
    throw tryAgainLater(
      `Cannot release port ${a.portId ?? "(unknown)"} of ${a.containerId}/${a.ifname} now (recorded as pending; a later DEL or GC completes it): ${(e as Error).message}`,
      e,
    );
  }
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
