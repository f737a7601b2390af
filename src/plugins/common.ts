// Helpers shared by the plugins: deterministic MACs, the pod address from a result, finding the host
// uplink for an address, and optional configuration keys.
import { createHash } from "node:crypto";
import { CniError, CniCode, invalidConfig } from "../cni/errors.js";
import type { NetConf } from "../cni/netconf.js";
import type { CniResult } from "../cni/result.js";
import { HOST, type Kernel } from "../kernel/types.js";
import { cidrContains, parseCidr, parseIp, ipBytes } from "../net/ip.js";

/** A locally administered unicast MAC derived from a string (stable across calls). */
export function derivedMac(seed: string): string {
  const h = createHash("sha256").update(seed).digest();
  return ["02", ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}

/** Kubernetes' pod MAC convention: 0a:58 followed by the IPv4 address. */
export function podMacFor(ip: string): string {
  return ["0a", "58", ...[...ipBytes(parseIp(ip))].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}

/** The first IPv4 address of a result, split into address and prefix. */
export function firstIpv4(r: CniResult, what: string): { ip: string; prefix: number; gateway?: string } {
  const v4 = r.ips.find((i) => !i.address.includes(":"));
  if (v4 === undefined) throw new CniError(CniCode.InvalidConfig, `${what} returned no IPv4 address`);
  const [ip, prefix] = v4.address.split("/");
  return { ip: ip!, prefix: Number(prefix), ...(v4.gateway === undefined ? {} : { gateway: v4.gateway }) };
}

/** The host link that carries an address: its subnet holds `ip` (else undefined). */
export async function linkForAddress(kernel: Kernel, ip: string): Promise<string | undefined> {
  const target = parseIp(ip);
  for (const a of await kernel.listAddresses(HOST)) {
    if (a.cidr.includes(":")) continue;
    const c = parseCidr(a.cidr);
    if (c.prefix < 32 && cidrContains(c, target)) return a.dev;
  }
  return undefined;
}

export const optionalPositiveInt = (conf: NetConf, key: string, min: number, max: number): number | undefined => {
  const v = conf.raw[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    throw invalidConfig(`"${key}" must be an integer from ${min} to ${max}`);
  return v;
};

export const optionalString = (conf: NetConf, key: string): string | undefined => {
  const v = conf.raw[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") throw invalidConfig(`"${key}" must be a non-empty string`);
  return v;
};
