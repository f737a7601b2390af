// Every kernel object name tcnp creates comes from here: derived from the container ID, so DEL finds
// it again without state, and length-checked against the kernel's limits.
import { createHash } from "node:crypto";

const IFNAMSIZ = 15;
const XT_CHAIN_MAXLEN = 28;

const hex = (algo: "sha256" | "sha512", s: string, n: number): string =>
  createHash(algo).update(s).digest("hex").slice(0, n);

function checked(name: string, max: number, what: string): string {
  if (name.length > max) throw new RangeError(`Cannot use ${what} "${name}": longer than ${max} characters`);
  return name;
}

/** Host end of a pod's veth: "veth" + 11 hex digits of sha256(containerID/podIfname). */
export const hostVethName = (containerId: string, podIfname: string): string =>
  checked(`veth${hex("sha256", `${containerId}/${podIfname}`, 11)}`, IFNAMSIZ, "interface name");

/** A temporary interface name used while moving/renaming a device. */
export const tempIfname = (seed: string): string =>
  checked(`tcnp${hex("sha256", `tmp/${seed}`, 11)}`, IFNAMSIZ, "interface name");

/** A per-pod iptables chain, like the reference plugins' CNI-<hash>: "TCNP-" + 23 hex digits. */
export const podChainName = (network: string, containerId: string, ifname: string): string =>
  checked(`TCNP-${hex("sha512", `${network}/${containerId}/${ifname}`, 23)}`, XT_CHAIN_MAXLEN, "iptables chain");

/** The iptables comment that marks a pod's rules (no spaces, so iptables-save prints it quoted as-is). */
export const podComment = (containerId: string): string => `tcnp:${containerId.slice(0, 32)}`;

/** A routing table id in [1000, 1000+2^20) derived from a name (deterministic, no scanning). */
export const tableIdFor = (name: string): number =>
  1000 + (parseInt(hex("sha256", `table/${name}`, 5), 16) % (1 << 20));
