// Per-node address blocks (mix mode, `nodeBlockPrefix`): each VM reserves an aligned block of a pod
// subnet and takes its pod addresses from it, so the router needs one route per node instead of one
// per pod. The reservation is a Neutron port holding the block's first usable address, named and
// tagged for the node: Neutron's own address uniqueness makes two nodes' claims on one block
// impossible (the loser gets 409 IpAddressAlreadyAllocated and moves to the next block).
import type { Logger } from "../log/logger.js";
import { addToIp, formatCidr, formatIp, networkOf, parseCidr, parseIp, broadcastOf, type Cidr } from "../net/ip.js";
import { isOpenStackError } from "../openstack/errors.js";
import type { Neutron } from "../openstack/neutron.js";
import type { FixedIp, Port, Subnet } from "../openstack/types.js";
import type { IpamConfig } from "./config.js";
import { BLOCK_TAG, blockOf, blockTag, clusterTag, nodeTag } from "./tags.js";
import type { VmPort } from "./vm-port.js";

function usable(subnet: Subnet, block: Cidr): bigint[] {
  const net = parseCidr(subnet.cidr);
  const lo = networkOf(block).ip.value;
  const hi = broadcastOf(block).value;
  const out: bigint[] = [];
  for (let v = lo; v <= hi; v++) {
    if (v === networkOf(net).ip.value || v === broadcastOf(net).value) continue;
    if (subnet.gateway_ip !== null && parseIp(subnet.gateway_ip).value === v) continue;
    out.push(v);
  }
  return out;
}

/** All aligned blocks of `prefix` inside the subnet, in address order. */
function blocksOf(subnet: Subnet, prefix: number): Cidr[] {
  const net = networkOf(parseCidr(subnet.cidr));
  if (prefix < net.prefix) return [];
  const size = 1n << BigInt(32 - prefix);
  const count = 1n << BigInt(prefix - net.prefix);
  return Array.from({ length: Number(count) }, (_, i) => ({ ip: addToIp(net.ip, size * BigInt(i)), prefix }));
}

const reservationDescription = (cidr: string, serverId: string): string =>
  `tcnp: ${cidr} reserved for the pods of server ${serverId}`;

/** The block and server an untagged reservation port stands for, from its name and description. */
export function untaggedReservation(
  p: Pick<Port, "name" | "description">,
): { block: string; serverId: string } | undefined {
  const m = /^tcnp: (\S+) reserved for the pods of server (\S+)$/.exec(p.description ?? "");
  if (m === null || p.name !== `tcnp-block-${m[1]}`) return undefined;
  return { block: m[1]!, serverId: m[2]! };
}

/**
 * Up to `count` addresses for the VM's pods from its blocks: free addresses of the blocks it holds
 * (never a reservation's own address), then of blocks it reserves for them as needed, with one
 * listing of the network's ports. Fewer when no block is left.
 */
export function blockChooser(cfg: IpamConfig, neutron: Neutron, log: Logger) {
  return async (vm: VmPort, subnet: Subnet, count: number): Promise<Array<Partial<FixedIp>>> => {
    const prefix = cfg.nodeBlockPrefix!;
    const serverId = vm.serverId;
    const all = await neutron.listPorts({ network_id: subnet.network_id });
    const taken = new Set<string>();
    for (const p of all) for (const f of p.fixed_ips) if (f.subnet_id === subnet.id) taken.add(f.ip_address);
    // A reservation whose create answer was lost has no tags yet: its name and description say
    // whose it is. Ours is tagged now (adopted); another node's still counts as claimed.
    const reservations: Port[] = [];
    for (const p of all) {
      if (p.tags.includes(BLOCK_TAG)) reservations.push(p);
      else {
        const claim = untaggedReservation(p);
        if (claim === undefined) continue;
        const tags = [BLOCK_TAG, blockTag(claim.block), nodeTag(claim.serverId), clusterTag(cfg.cluster)];
        if (claim.serverId === serverId) {
          await neutron.setTags("ports", p.id, tags);
          log.info("adopted a block reservation whose create answer was lost", {
            block: claim.block,
            reservationPort: p.id,
          });
        }
        reservations.push({ ...p, tags });
      }
    }
    const mine = reservations
      .filter((r) => r.tags.includes(nodeTag(serverId)))
      .map(blockOf)
      .filter((b): b is string => b !== undefined)
      .map(parseCidr);
    const tokens = new Set(reservations.flatMap((r) => r.fixed_ips.map((f) => f.ip_address)));
    const out: Array<Partial<FixedIp>> = [];
    const take = (b: Cidr): void => {
      for (const v of usable(subnet, b)) {
        if (out.length >= count) return;
        const ip = formatIp({ family: 4, value: v });
        if (taken.has(ip) || tokens.has(ip)) continue;
        taken.add(ip);
        out.push({ subnet_id: subnet.id, ip_address: ip });
      }
    };
    // Free addresses in my blocks first.
    for (const b of mine) take(b);
    // Then the next blocks nobody holds and whose addresses are all free, reserved for this VM.
    const claimed = new Set(reservations.map(blockOf));
    for (const b of blocksOf(subnet, prefix)) {
      if (out.length >= count) break;
      const cidr = formatCidr(b);
      if (claimed.has(cidr)) continue;
      const addrs = usable(subnet, b);
      if (addrs.length < 2 || addrs.some((v) => taken.has(formatIp({ family: 4, value: v })))) continue;
      const token = formatIp({ family: 4, value: addrs[0]! });
      try {
        const r = await neutron.createPort({
          network_id: subnet.network_id,
          name: `tcnp-block-${cidr}`,
          description: reservationDescription(cidr, serverId),
          fixed_ips: [{ subnet_id: subnet.id, ip_address: token }],
        });
        await neutron.setTags("ports", r.id, [BLOCK_TAG, blockTag(cidr), nodeTag(serverId), clusterTag(cfg.cluster)]);
        log.info("reserved a per-node block", { block: cidr, server: serverId, reservationPort: r.id });
        tokens.add(token);
        take(b);
      } catch (e) {
        if (isOpenStackError(e, "IpAddressAlreadyAllocated")) continue;
        throw e;
      }
    }
    return out;
  };
}
