// vrouter-route-controller's configuration file (JSON, or YAML by extension), validated with errors
// that name the field.
import { isObject } from "../cni/netconf.js";
import { tryParseCidr } from "../net/ip.js";
import { resolveCredentials, type CredentialSources, type Credentials } from "../openstack/credentials.js";
import { parseYaml } from "../util/yaml.js";

export interface KubernetesConfig {
  /** "auto": when running in a cluster (KUBERNETES_SERVICE_HOST set) or apiUrl is given. */
  enabled: boolean | "auto";
  apiUrl?: string;
  tokenFile?: string;
  caCert?: string;
  leaseName: string;
  leaseNamespace: string;
  leaseDurationMs: number;
  renewMs: number;
  /** Emit Kubernetes events on pods left without a route. */
  events: boolean;
  /** Reconcile early when a pod's address appears or goes (a pod watch). */
  watchPods: boolean;
  /** Reconcile at once when a Node object is deleted (its VM's addresses, ports and routes go). */
  watchNodes?: boolean;
  identity?: string;
}

/** What the operator lets one namespace's pods ask for. */
export interface FloatingGrant {
  /** `tcnp.io/floating-ip: auto` allowed (a new floating IP is allocated for the pod). */
  auto: boolean;
  /** At most this many floating IPs held for the namespace's pods at once (allocated and named). */
  max: number;
}

export interface FloatingIpConfig {
  /** The external network floating IPs come from. */
  network: string;
  /** Namespace → grant; a namespace not listed gets none. */
  namespaces: Record<string, FloatingGrant>;
  /** How long a floating IP stays reserved for a pod (by namespace/name) after it went: a restarted StatefulSet pod gets it back. */
  reservationMs: number;
}

export interface ControllerConfig {
  credentials: Credentials;
  /** This cluster's name: on everything tcnp makes in the cloud; only its own objects are touched. */
  cluster: string;
  routerId: string;
  networks: string[];
  /** Where pod addresses live (the routes we own are inside these); default: the networks' subnets. */
  podCidrs?: string[];
  /** Where next hops live; default: the networks' subnets. */
  nodeCidrs?: string[];
  intervalMs: number;
  /** The router's route limit if known; otherwise learnt from the first refusal. */
  routeLimit?: number;
  aggregate: boolean;
  /** "auto" uses add/remove_extraroutes when advertised, else PUT with If-Match. */
  apply: "auto" | "atomic" | "put";
  listen?: string;
  /** Floating IPs for pods (pod annotation tcnp.io/floating-ip), as the operator grants them. */
  floatingIps?: FloatingIpConfig;
  kubernetes: KubernetesConfig;
  logFile?: string;
}

export class ConfigError extends Error {}

const UUID = /^[0-9a-fA-F-]{32,36}$/;
/** A cluster's name: it goes into tags (tcnp-cluster=NAME) and Kubernetes-style names. */
export const CLUSTER = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function parseFloatingIps(v: unknown, bad: (m: string) => never): FloatingIpConfig {
  if (!isObject(v)) return bad(`"floatingIps" must be an object: {network, namespaces}`);
  const network = v["network"];
  if (typeof network !== "string" || !UUID.test(network))
    bad(`"floatingIps.network" must be the external network's ID`);
  const ns = v["namespaces"] ?? {};
  if (!isObject(ns)) bad(`"floatingIps.namespaces" must map namespaces to grants: {auto, max}`);
  const namespaces: Record<string, FloatingGrant> = {};
  for (const [name, g] of Object.entries(ns as Record<string, unknown>)) {
    if (!isObject(g)) bad(`"floatingIps.namespaces.${name}" must be an object: {auto, max}`);
    const grant = g as Record<string, unknown>;
    const max = grant["max"] ?? 1;
    if (typeof max !== "number" || !Number.isInteger(max) || max < 0)
      bad(`"floatingIps.namespaces.${name}.max" must be an integer ≥ 0`);
    if (grant["auto"] !== undefined && typeof grant["auto"] !== "boolean")
      bad(`"floatingIps.namespaces.${name}.auto" must be true or false`);
    namespaces[name] = { auto: grant["auto"] === true, max: max as number };
  }
  const res = v["reservationSeconds"] ?? 600;
  if (typeof res !== "number" || res < 0) bad(`"floatingIps.reservationSeconds" must be a number of seconds ≥ 0`);
  return { network: network as string, namespaces, reservationMs: (res as number) * 1000 };
}

export function parseControllerConfig(text: string, file: string, src: CredentialSources): ControllerConfig {
  let raw: unknown;
  try {
    raw = /\.ya?ml$/.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`Cannot parse ${file}: ${(e as Error).message}`);
  }
  if (!isObject(raw)) throw new ConfigError(`${file}: the configuration must be an object`);
  const bad = (m: string): never => {
    throw new ConfigError(`${file}: ${m}`);
  };
  let credentials: Credentials;
  try {
    credentials = resolveCredentials(raw["openstack"], src, "openstack");
  } catch (e) {
    throw new ConfigError(`${file}: ${(e as Error).message}`);
  }
  const routerId = raw["routerId"];
  if (typeof routerId !== "string" || !UUID.test(routerId)) bad(`"routerId" must be the Neutron router's ID`);
  const networks = raw["networks"];
  if (!Array.isArray(networks) || networks.length === 0 || networks.some((n) => typeof n !== "string" || !UUID.test(n)))
    bad(`"networks" must be a non-empty list of network IDs`);
  const cidrs = (key: string): string[] | undefined => {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || v.some((c) => typeof c !== "string" || tryParseCidr(c) === undefined))
      bad(`"${key}" must be a list of CIDRs`);
    return v as string[];
  };
  const num = (key: string, def: number | undefined, min: number): number | undefined => {
    const v = raw[key];
    if (v === undefined) return def;
    if (typeof v !== "number" || !(v >= min)) bad(`"${key}" must be a number ≥ ${min}`);
    return v as number;
  };
  const apply = raw["apply"] ?? "auto";
  if (apply !== "auto" && apply !== "atomic" && apply !== "put") bad(`"apply" must be "auto", "atomic" or "put"`);
  const k = isObject(raw["kubernetes"]) ? raw["kubernetes"] : {};
  const kEnabled = k["enabled"] ?? "auto";
  if (kEnabled !== "auto" && typeof kEnabled !== "boolean") bad(`"kubernetes.enabled" must be true, false or "auto"`);
  const kstr = (key: string): string | undefined => (typeof k[key] === "string" ? (k[key] as string) : undefined);
  const kubernetes: KubernetesConfig = {
    enabled: kEnabled as boolean | "auto",
    leaseName: kstr("leaseName") ?? "vrouter-route-controller",
    leaseNamespace: kstr("leaseNamespace") ?? "kube-system",
    leaseDurationMs: (typeof k["leaseDurationSeconds"] === "number" ? k["leaseDurationSeconds"] : 15) * 1000,
    renewMs: (typeof k["renewSeconds"] === "number" ? k["renewSeconds"] : 5) * 1000,
    events: k["events"] !== false,
    watchPods: k["watchPods"] !== false,
    watchNodes: k["watchNodes"] !== false,
  };
  if (kubernetes.renewMs <= 0 || kubernetes.renewMs >= (kubernetes.leaseDurationMs * 2) / 3) {
    bad(
      `"kubernetes.renewSeconds" must be above 0 and below two thirds of "kubernetes.leaseDurationSeconds" (the renew deadline)`,
    );
  }
  for (const key of ["apiUrl", "tokenFile", "caCert", "identity"] as const) {
    const v = kstr(key);
    if (v !== undefined) kubernetes[key] = v;
  }
  const cluster = raw["cluster"] ?? "default";
  if (typeof cluster !== "string" || !CLUSTER.test(cluster))
    bad(`"cluster" must be a name of 1 to 63 lower-case letters, digits and "-" (got ${JSON.stringify(cluster)})`);
  const out: ControllerConfig = {
    credentials,
    cluster: cluster as string,
    routerId: routerId as string,
    networks: networks as string[],
    intervalMs: (num("intervalSeconds", 10, 0.1) ?? 10) * 1000,
    aggregate: raw["aggregate"] !== false,
    apply: apply as ControllerConfig["apply"],
    kubernetes,
  };
  const pc = cidrs("podCidrs");
  if (pc !== undefined) out.podCidrs = pc;
  const nc = cidrs("nodeCidrs");
  if (nc !== undefined) out.nodeCidrs = nc;
  const limit = num("routeLimit", undefined, 1);
  if (limit !== undefined) out.routeLimit = limit;
  if (typeof raw["listen"] === "string") out.listen = raw["listen"];
  const fips =
    raw["floatingIps"] ?? (raw["floatingIpNetwork"] === undefined ? undefined : { network: raw["floatingIpNetwork"] });
  if (fips !== undefined) out.floatingIps = parseFloatingIps(fips, bad);
  if (typeof raw["logFile"] === "string") out.logFile = raw["logFile"];
  return out;
}
