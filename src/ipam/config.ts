// tcnp-ipam's configuration: the `ipam` block of the network configuration, validated with errors
// that name the field (code 7). Works for the seed configurations exactly as written.
import { invalidConfig } from "../cni/errors.js";
import { isObject, type Json, type NetConf } from "../cni/netconf.js";
import type { CniRoute } from "../cni/result.js";
import { tryParseCidr, tryParseIp } from "../net/ip.js";
import { resolveCredentials, type CredentialSources, type Credentials } from "../openstack/credentials.js";

export type IpamMode = "mix" | "eni";

export interface IpamTimeouts {
  /** One OpenStack API request. */
  apiMs: number;
  /** Waiting for a hot-plugged NIC to appear in the VM. */
  nicMs: number;
  /** Waiting for Nova to finish a detach. */
  detachMs: number;
  /** Waiting for the node-wide IPAM lock. */
  lockMs: number;
}

export interface IpamConfig {
  /** The cluster this node belongs to: its cloud objects carry it (default "default"). */
  cluster: string;
  mode: IpamMode;
  networks: string[];
  /** Only allocate from these subnets (a dedicated pod subnet); empty = any IPv4 subnet of `networks`. */
  subnets: string[];
  /** eni: security groups for pod ports; default: those of the VM's own port. */
  securityGroups?: string[];
  routes: CniRoute[];
  credentials: Credentials;
  serverId?: string;
  /** null: do not ask the metadata service. */
  metadataUrl: string | null;
  stateDir: string;
  dmiUuidPath: string;
  configDrivePaths: string[];
  timeouts: IpamTimeouts;
  /** How many times to redo a fixed_ips update that lost a revision race (412). */
  conflictAttempts: number;
  /** mix: reserve a per-node block of this prefix length and allocate from it (one router route per node). */
  nodeBlockPrefix?: number;
  /**
   * How long a released address stays out of Neutron's hands (0: at once): mix, on the VM's port; eni,
   * on the pod's port, detached from the VM (plugin path) or attached in the agent's pool.
   */
  coolDownMs: number;
  /** The node agent's warm pool (ipam.pool). */
  pool: { warm: number; minimum: number; maximum: number; deadlineMs: number };
  /** Unknown keys seen, for a warning. */
  unknownKeys: string[];
}

const UUID = /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/;
const KNOWN_IPAM = new Set([
  "type",
  "openstackConf",
  "neutronConf",
  "routes",
  "serverId",
  "metadataUrl",
  "stateDir",
  "cluster",
  "logFile",
  "logLevel",
  "timeouts",
  "conflictAttempts",
  "dmiUuidPath",
  "configDrivePaths",
  "coolDownSeconds",
  "pool",
]);
const KNOWN_NEUTRON = new Set(["networks", "mode", "subnets", "securityGroups", "nodeBlockPrefix"]);

function uuidList(v: unknown, field: string, required: boolean): string[] {
  if (v === undefined || v === null) {
    if (required) throw invalidConfig(`${field} is required: a list of network IDs`);
    return [];
  }
  if (!Array.isArray(v) || (required && v.length === 0))
    throw invalidConfig(`${field} must be a non-empty list of IDs`);
  return v.map((x, i) => {
    if (typeof x !== "string" || !UUID.test(x))
      throw invalidConfig(`${field}[${i}] ${JSON.stringify(x)} is not an ID (UUID)`);
    return x;
  });
}

export function parseRoutes(v: unknown, field: string): CniRoute[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw invalidConfig(`${field} must be a list`);
  return v.map((r, i) => {
    if (!isObject(r)) throw invalidConfig(`${field}[${i}] must be an object with "dst"`);
    const dst = r["dst"];
    if (typeof dst !== "string" || tryParseCidr(dst) === undefined)
      throw invalidConfig(`${field}[${i}].dst ${JSON.stringify(dst)} is not a CIDR`);
    const out: CniRoute = { dst };
    if (r["gw"] !== undefined) {
      if (typeof r["gw"] !== "string" || tryParseIp(r["gw"]) === undefined)
        throw invalidConfig(`${field}[${i}].gw ${JSON.stringify(r["gw"])} is not an IP address`);
      out.gw = r["gw"];
    }
    return out;
  });
}

function seconds(o: Json, key: string, def: number, field: string): number {
  const v = o[key];
  if (v === undefined) return def * 1000;
  if (typeof v !== "number" || !(v > 0)) throw invalidConfig(`${field}.${key} must be a positive number of seconds`);
  return v * 1000;
}

export function parseIpamConfig(conf: NetConf, src: CredentialSources): IpamConfig {
  const ipam = conf.raw["ipam"];
  if (!isObject(ipam)) throw invalidConfig(`"ipam" must be an object with "type": "tcnp-ipam"`);
  const nc = ipam["neutronConf"];
  if (!isObject(nc)) throw invalidConfig('ipam.neutronConf is required: {"networks": [...], "mode": "mix" | "eni"}');
  const mode = nc["mode"];
  if (mode !== "mix" && mode !== "eni")
    throw invalidConfig(`ipam.neutronConf.mode must be "mix" or "eni" (got ${JSON.stringify(mode)})`);
  const networks = uuidList(nc["networks"], "ipam.neutronConf.networks", true);
  const subnets = uuidList(nc["subnets"], "ipam.neutronConf.subnets", false);
  const credentials = resolveCredentials(ipam["openstackConf"], src);
  const cluster = ipam["cluster"] ?? "default";
  if (typeof cluster !== "string" || !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(cluster))
    throw invalidConfig(`ipam.cluster must be a name of 1 to 63 lower-case letters, digits and "-"`);
  const out: IpamConfig = {
    cluster,
    mode,
    networks,
    subnets,
    credentials,
    routes: parseRoutes(ipam["routes"], "ipam.routes"),
    metadataUrl: "http://169.254.169.254",
    stateDir: "/var/lib/tcnp",
    dmiUuidPath: "/sys/class/dmi/id/product_uuid",
    configDrivePaths: ["/mnt/config", "/media/configdrive", "/config-2"],
    timeouts: { apiMs: 30_000, nicMs: 60_000, detachMs: 60_000, lockMs: 180_000 },
    conflictAttempts: 10,
    coolDownMs: 30_000,
    // eni: every pool port is a NIC hot-plugged into the VM (a few slots); mix: addresses are cheap.
    // eni: every pool port is a NIC hot-plugged into the VM, and a VM has a few free PCIe slots
    // (libvirt's choice, often 1–2; Nova's [libvirt] num_pcie_ports up to 28): 4 unless configured,
    // and fewer once an attach finds the slots full.
    pool: { warm: mode === "eni" ? 2 : 5, minimum: 0, maximum: mode === "eni" ? 4 : 110, deadlineMs: 10_000 },
    unknownKeys: [
      ...Object.keys(ipam)
        .filter((k) => !KNOWN_IPAM.has(k))
        .map((k) => `ipam.${k}`),
      ...Object.keys(nc)
        .filter((k) => !KNOWN_NEUTRON.has(k))
        .map((k) => `ipam.neutronConf.${k}`),
    ],
  };
  const sg = nc["securityGroups"];
  if (sg !== undefined) {
    if (!Array.isArray(sg) || sg.some((x) => typeof x !== "string"))
      throw invalidConfig("ipam.neutronConf.securityGroups must be a list of security group IDs");
    out.securityGroups = sg as string[];
  }
  const block = nc["nodeBlockPrefix"];
  if (block !== undefined) {
    if (typeof block !== "number" || !Number.isInteger(block) || block < 20 || block > 30)
      throw invalidConfig("ipam.neutronConf.nodeBlockPrefix must be an integer from 20 to 30");
    if (mode !== "mix") throw invalidConfig("ipam.neutronConf.nodeBlockPrefix applies to mix mode only");
    out.nodeBlockPrefix = block;
  }
  const serverId = ipam["serverId"];
  if (serverId !== undefined) {
    if (typeof serverId !== "string" || !UUID.test(serverId))
      throw invalidConfig(`ipam.serverId ${JSON.stringify(serverId)} is not a server ID (UUID)`);
    out.serverId = serverId;
  }
  const md = ipam["metadataUrl"];
  if (md !== undefined) {
    if (md !== null && (typeof md !== "string" || !/^https?:\/\//.test(md)))
      throw invalidConfig("ipam.metadataUrl must be an http(s) URL, or null to not use the metadata service");
    out.metadataUrl = md;
  }
  for (const [key, field] of [
    ["stateDir", "stateDir"],
    ["dmiUuidPath", "dmiUuidPath"],
  ] as const) {
    const v = ipam[key];
    if (v !== undefined) {
      if (typeof v !== "string" || !v.startsWith("/")) throw invalidConfig(`ipam.${field} must be an absolute path`);
      out[key] = v;
    }
  }
  if (ipam["stateDir"] === undefined && src.env["TCNP_STATE_DIR"] !== undefined)
    out.stateDir = src.env["TCNP_STATE_DIR"];
  const cd = ipam["configDrivePaths"];
  if (cd !== undefined) {
    if (!Array.isArray(cd) || cd.some((x) => typeof x !== "string"))
      throw invalidConfig("ipam.configDrivePaths must be a list of paths");
    out.configDrivePaths = cd as string[];
  }
  const t = ipam["timeouts"];
  if (t !== undefined) {
    if (!isObject(t)) throw invalidConfig("ipam.timeouts must be an object of seconds");
    out.timeouts = {
      apiMs: seconds(t, "api", 30, "ipam.timeouts"),
      nicMs: seconds(t, "nic", 60, "ipam.timeouts"),
      detachMs: seconds(t, "detach", 60, "ipam.timeouts"),
      lockMs: seconds(t, "lock", 180, "ipam.timeouts"),
    };
  }
  const ca = ipam["conflictAttempts"];
  if (ca !== undefined) {
    if (typeof ca !== "number" || !Number.isInteger(ca) || ca < 1 || ca > 100)
      throw invalidConfig("ipam.conflictAttempts must be an integer from 1 to 100");
    out.conflictAttempts = ca;
  }
  const cool = ipam["coolDownSeconds"];
  if (cool !== undefined) {
    if (typeof cool !== "number" || !(cool >= 0) || cool > 3600)
      throw invalidConfig("ipam.coolDownSeconds must be a number of seconds from 0 to 3600");
    out.coolDownMs = cool * 1000;
  }
  const pool = ipam["pool"];
  if (pool !== undefined) {
    if (!isObject(pool)) throw invalidConfig("ipam.pool must be an object: {warmTarget, minimumTarget, maximum}");
    const int = (key: string, def: number, max: number): number => {
      const v = pool[key];
      if (v === undefined) return def;
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max)
        throw invalidConfig(`ipam.pool.${key} must be an integer from 0 to ${max}`);
      return v;
    };
    out.pool = {
      warm: int("warmTarget", mode === "eni" ? 2 : 5, 1024),
      minimum: int("minimumTarget", 0, 1024),
      maximum: int("maximum", 110, 4096),
      deadlineMs: seconds(pool, "deadlineSeconds", 10, "ipam.pool"),
    };
    const unknown = Object.keys(pool).filter(
      (k) => !["warmTarget", "minimumTarget", "maximum", "deadlineSeconds"].includes(k),
    );
    out.unknownKeys.push(...unknown.map((k) => `ipam.pool.${k}`));
  }
  return out;
}
