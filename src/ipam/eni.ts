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
import { candidateSubnets } from "./mix.js";
import type { Allocation, AllocationStore } from "./store.js";
import { containerTag, ENI_TAG, ifnameTag, nodeTag } from "./tags.js";

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

/** Detach (if attached), wait for Nova to let go, delete. Already-gone pieces are fine. */
async function destroyPort(d: EniDeps, portId: string, serverId: string): Promise<void> {
  let port: Port;
  try {
    port = await d.neutron.getPort(portId);
  } catch (e) {
    if (isOpenStackError(e, "PortNotFound")) return;
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
        if (isOpenStackError(e, "PortNotFound")) return;
        throw e;
      }
    }
  }
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
      description: `tcnp eni port of ${who.containerId}/${who.ifname}`,
      fixed_ips: [{ subnet_id: subnet.id }],
    };
    if (sgs !== undefined) body["security_groups"] = sgs;
    port = await d.neutron.createPort(body);
  } catch (e) {
    d.store.delete(who.containerId, who.ifname);
    if (isOpenStackError(e, "IpAddressGenerationFailure")) return undefined;
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

export async function eniRelease(d: EniDeps, a: Allocation): Promise<void> {
  try {
    if (a.portId !== undefined) await destroyPort(d, a.portId, a.serverId);
    else await releaseByTags(d, a.containerId, a.ifname, a.serverId);
    d.store.delete(a.containerId, a.ifname);
  } catch (e) {
    if (!isTransient(e, { conflict: true })) throw e;
    d.store.put({ ...a, state: "releasing", error: (e as Error).message, updatedAt: d.clock.now() });
    throw tryAgainLater(
      `Cannot release port ${a.portId ?? "(unknown)"} of ${a.containerId}/${a.ifname} now (recorded as pending; a later DEL or GC completes it): ${(e as Error).message}`,
      e,
    );
  }
}

/** Without a local record: the ports tagged as this container's (or carrying prevResult's MACs). */
export async function releaseByTags(
  d: EniDeps,
  containerId: string,
  ifname: string,
  serverId: string,
  macs: string[] = [],
): Promise<string[]> {
  const tagged = await d.neutron.listPorts({ tags: `${containerTag(containerId)},${ifnameTag(ifname)}` });
  const byMac =
    macs.length === 0
      ? []
      : (await Promise.all(macs.map((m) => d.neutron.listPorts({ mac_address: m }))))
          .flat()
          .filter((p) => p.tags.includes(ENI_TAG));
  const ids = [...new Set([...tagged, ...byMac].map((p) => p.id))];
  for (const id of ids) await destroyPort(d, id, serverId);
  return ids;
}
