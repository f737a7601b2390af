// One internal result model (the 1.1.0 shape), converted from any supported version on input
// (prevResult, delegated IPAM output) and to the configuration's version on output.
import { decodeFailure } from "./errors.js";
import { compareVersions, type CniVersion } from "./version.js";

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}
export interface CniIp {
  /** CIDR notation: address/prefix. */
  address: string;
  gateway?: string;
  interface?: number;
}
export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}
export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}
export interface CniResult {
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: CniRoute[];
  dns?: CniDns;
}

export const emptyResult = (): CniResult => ({ interfaces: [], ips: [], routes: [] });

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function str(o: Json, key: string, where: string, required: boolean): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) {
    if (required) throw decodeFailure(`Cannot decode result: ${where}.${key} is missing`);
    return undefined;
  }
  if (typeof v !== "string") throw decodeFailure(`Cannot decode result: ${where}.${key} must be a string`);
  return v;
}

function num(o: Json, key: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    throw decodeFailure(`Cannot decode result: ${where}.${key} must be an integer`);
  }
  return v;
}

function list(o: Json, key: string): unknown[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw decodeFailure(`Cannot decode result: "${key}" must be a list`);
  return v;
}

function strList(o: Json, key: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw decodeFailure(`Cannot decode result: ${where}.${key} must be a list of strings`);
  }
  return v as string[];
}

function assign<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}

function parseInterface(v: unknown, i: number): CniInterface {
  const where = `interfaces[${i}]`;
  if (!isObj(v)) throw decodeFailure(`Cannot decode result: ${where} must be an object`);
  const out: CniInterface = { name: str(v, "name", where, true) ?? "" };
  assign(out, "mac", str(v, "mac", where, false));
  assign(out, "mtu", num(v, "mtu", where));
  assign(out, "sandbox", str(v, "sandbox", where, false));
  assign(out, "socketPath", str(v, "socketPath", where, false));
  assign(out, "pciID", str(v, "pciID", where, false));
  return out;
}

function parseIp(v: unknown, i: number): CniIp {
  const where = `ips[${i}]`;
  if (!isObj(v)) throw decodeFailure(`Cannot decode result: ${where} must be an object`);
  const out: CniIp = { address: str(v, "address", where, true) ?? "" };
  if (!out.address.includes("/"))
    throw decodeFailure(`Cannot decode result: ${where}.address must be in CIDR notation`);
  assign(out, "gateway", str(v, "gateway", where, false));
  assign(out, "interface", num(v, "interface", where));
  return out;
}

function parseRoute(v: unknown, i: number): CniRoute {
  const where = `routes[${i}]`;
  if (!isObj(v)) throw decodeFailure(`Cannot decode result: ${where} must be an object`);
  const out: CniRoute = { dst: str(v, "dst", where, true) ?? "" };
  assign(out, "gw", str(v, "gw", where, false));
  for (const k of ["mtu", "advmss", "priority", "table", "scope"] as const) assign(out, k, num(v, k, where));
  return out;
}

function parseDns(v: unknown): CniDns | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw decodeFailure("Cannot decode result: dns must be an object");
  const out: CniDns = {};
  assign(out, "nameservers", strList(v, "nameservers", "dns"));
  assign(out, "domain", str(v, "domain", "dns", false));
  assign(out, "search", strList(v, "search", "dns"));
  assign(out, "options", strList(v, "options", "dns"));
  return Object.keys(out).length === 0 ? undefined : out;
}

/** Decode a result of any supported version (0.3.0 … 1.1.0) into the internal model. */
export function parseResult(raw: unknown): CniResult {
  if (!isObj(raw)) throw decodeFailure("Cannot decode result: not a JSON object");
  if (raw["ip4"] !== undefined || raw["ip6"] !== undefined) {
    throw decodeFailure("Cannot decode result: 0.1.0/0.2.0 results (ip4/ip6) are not supported");
  }
  const out: CniResult = {
    interfaces: list(raw, "interfaces").map(parseInterface),
    ips: list(raw, "ips").map(parseIp),
    routes: list(raw, "routes").map(parseRoute),
  };
  assign(out, "dns", parseDns(raw["dns"]));
  return out;
}

const ipVersionOf = (cidr: string): "4" | "6" => (cidr.includes(":") ? "6" : "4");

/** Encode the model in the given version, as Go's libcni would print it (empty fields omitted). */
export function formatResult(r: CniResult, version: CniVersion): Json {
  const legacy = compareVersions(version, "1.0.0") < 0;
  const v11 = compareVersions(version, "1.1.0") >= 0;
  const out: Json = { cniVersion: version };
  if (r.interfaces.length > 0) {
    out["interfaces"] = r.interfaces.map((i) => {
      const o: Json = { name: i.name };
      if (i.mac !== undefined) o["mac"] = i.mac;
      if (v11 && i.mtu !== undefined) o["mtu"] = i.mtu;
      if (i.sandbox !== undefined) o["sandbox"] = i.sandbox;
      if (v11 && i.socketPath !== undefined) o["socketPath"] = i.socketPath;
      if (v11 && i.pciID !== undefined) o["pciID"] = i.pciID;
      return o;
    });
  }
  if (r.ips.length > 0) {
    out["ips"] = r.ips.map((ip) => {
      const o: Json = {};
      if (legacy) o["version"] = ipVersionOf(ip.address);
      if (ip.interface !== undefined) o["interface"] = ip.interface;
      o["address"] = ip.address;
      if (ip.gateway !== undefined) o["gateway"] = ip.gateway;
      return o;
    });
  }
  if (r.routes.length > 0) {
    out["routes"] = r.routes.map((rt) => {
      const o: Json = { dst: rt.dst };
      if (rt.gw !== undefined) o["gw"] = rt.gw;
      if (v11)
        for (const k of ["mtu", "advmss", "priority", "table", "scope"] as const) {
          if (rt[k] !== undefined) o[k] = rt[k];
        }
      return o;
    });
  }
  if (r.dns !== undefined) out["dns"] = { ...r.dns };
  return out;
}
