// The Neutron tags tcnp-ipam writes on ports: the contract between the plugins (which write them),
// the route controller and doctor (which read them). One place for both directions.
import type { Port } from "../openstack/types.js";

/** A VM port whose extra fixed IPs are mix-mode pods. */
export const MIX_TAG = "tcnp-mix";
/** A pod's own port (eni mode). */
export const ENI_TAG = "tcnp-eni";
/** A port that reserves a per-node block of addresses. */
export const BLOCK_TAG = "tcnp-block";

/** On a mix VM port: one of its addresses is in the node agent's warm pool (no pod holds it). */
export const POOL_TAG_PREFIX = "tcnp-pool=";
export const poolTag = (ip: string): string => `${POOL_TAG_PREFIX}${ip}`;

const NODE_IP = "tcnp-node-ip=";
const CLUSTER = "tcnp-cluster=";
/** The cluster a cloud object of tcnp's belongs to (everything tcnp makes or marks carries it). */
export const clusterTag = (name: string): string => `${CLUSTER}${name}`;
const BLOCK = "tcnp-block=";
const NODE = "tcnp-node=";

export const nodeIpTag = (ip: string): string => `${NODE_IP}${ip}`;
export const blockTag = (cidr: string): string => `${BLOCK}${cidr}`;
/** The Nova server a port belongs to (eni ports, block reservations). */
export const nodeTag = (serverId: string): string => `${NODE}${serverId}`;
export const containerTag = (id: string): string => `tcnp-container=${id}`;
export const ifnameTag = (ifname: string): string => `tcnp-ifname=${ifname}`;

const valueOf = (p: Pick<Port, "tags">, prefix: string): string | undefined =>
  p.tags.find((t) => t.startsWith(prefix))?.slice(prefix.length);
/** The VM's own address on a mix-tagged VM port (the next hop for its pods). */
export const nodeIpOf = (p: Port): string | undefined => valueOf(p, NODE_IP);
/** The CIDR a reservation port stands for. */
export const blockOf = (p: Port): string | undefined => valueOf(p, BLOCK);
export const nodeOf = (p: Port): string | undefined => valueOf(p, NODE);
/** The cluster of an object tcnp marked; earlier versions marked none: the cluster "default"'s. */
export const clusterOf = (p: Pick<Port, "tags">): string =>
  p.tags.find((t) => t.startsWith(CLUSTER))?.slice(CLUSTER.length) ?? "default";

/**
 * The description of a pod's own port (eni): set in the create request itself, so a port whose
 * create answer was lost (timeout, reset, a killed plugin) is still found by DEL and GC — tags can
 * only be added after the create on most clouds.
 */
export const eniDescription = (containerId: string, ifname: string, serverId: string): string =>
  `tcnp eni port of ${containerId}/${ifname} on server ${serverId}`;
/** The description earlier versions gave eni ports. */
export const legacyEniDescription = (containerId: string, ifname: string): string =>
  `tcnp eni port of ${containerId}/${ifname}`;

/** Whose an eni port is, from its tags or its description. */
export function eniOwnerOf(p: Port): { containerId: string; ifname: string; serverId?: string } | undefined {
  const c = valueOf(p, "tcnp-container=");
  const i = valueOf(p, "tcnp-ifname=");
  if (c !== undefined && i !== undefined) {
    const server = nodeOf(p);
    return { containerId: c, ifname: i, ...(server === undefined ? {} : { serverId: server }) };
  }
  const m = /^tcnp eni port of (.+)\/([^/\s]+?)(?: on server (\S+))?$/.exec(p.description ?? "");
  if (m === null) return undefined;
  return { containerId: m[1]!, ifname: m[2]!, ...(m[3] === undefined ? {} : { serverId: m[3] }) };
}

/** The name and description of an eni pool port (set at create: found even if never tagged). */
export const ENI_POOL_NAME = "tcnp-eni-pool";
export const eniPoolDescription = (serverId: string): string => `tcnp eni pool port on server ${serverId}`;

/**
 * The Nova server that what tcnp made on a port belongs to: its node tag, an eni port's owner, a
 * pool port's description; undefined when the port does not say (not tcnp's, or a mix VM port,
 * whose server is its device_id).
 */
export function serverOf(p: Port): string | undefined {
  const pool = /^tcnp eni pool port on server (\S+)$/.exec(p.description ?? "");
  return nodeOf(p) ?? eniOwnerOf(p)?.serverId ?? pool?.[1];
}
