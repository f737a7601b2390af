// The objects NetworkPolicy is computed from, as the engine keeps them: the parts of the API's
// NetworkPolicy, Pod and Namespace that decide what a pod may send and receive (networking.k8s.io/v1).
// `parse*` take the API server's JSON (untrusted shape) and keep only those parts.

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
}

export interface PolicyPort {
  /** TCP, UDP or SCTP (TCP when the policy leaves it out). */
  protocol: string;
  /** A number, a name (a container port's name) or absent (every port). */
  port?: number | string;
  endPort?: number;
}

export interface PolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

export interface PolicyRule {
  /** Absent or empty: every peer. */
  peers: PolicyPeer[];
  /** Absent or empty: every port. */
  ports: PolicyPort[];
}

export interface Policy {
  namespace: string;
  name: string;
  podSelector: LabelSelector;
  /** Which directions the policy isolates (the API's defaults applied). */
  ingress?: PolicyRule[];
  egress?: PolicyRule[];
}

export interface PodPort {
  name?: string;
  containerPort: number;
  protocol: string;
}

export interface Pod {
  namespace: string;
  name: string;
  uid: string;
  labels: Record<string, string>;
  ips: string[];
  hostNetwork: boolean;
  /** The address of the node it runs on (status.hostIP), once scheduled and started. */
  hostIp?: string;
  /** Succeeded or Failed: holds no address any more. */
  finished: boolean;
  ports: PodPort[];
}

export interface Namespace {
  name: string;
  labels: Record<string, string>;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const strMap = (v: unknown): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(obj(v))) if (typeof x === "string") out[k] = x;
  return out;
};

function parseSelector(v: unknown): LabelSelector {
  const o = obj(v);
  const s: LabelSelector = {};
  if (o["matchLabels"] !== undefined) s.matchLabels = strMap(o["matchLabels"]);
  if (o["matchExpressions"] !== undefined)
    s.matchExpressions = arr(o["matchExpressions"]).map((e) => {
      const x = obj(e);
      return {
        key: String(x["key"] ?? ""),
        operator: String(x["operator"] ?? ""),
        ...(Array.isArray(x["values"]) ? { values: x["values"].map(String) } : {}),
      };
    });
  return s;
}

function parsePort(v: unknown): PolicyPort {
  const o = obj(v);
  const p: PolicyPort = { protocol: typeof o["protocol"] === "string" ? o["protocol"] : "TCP" };
  if (typeof o["port"] === "number" || typeof o["port"] === "string") p.port = o["port"];
  if (typeof o["endPort"] === "number") p.endPort = o["endPort"];
  return p;
}

function parsePeer(v: unknown): PolicyPeer {
  const o = obj(v);
  const p: PolicyPeer = {};
  if (o["podSelector"] !== undefined && o["podSelector"] !== null) p.podSelector = parseSelector(o["podSelector"]);
  if (o["namespaceSelector"] !== undefined && o["namespaceSelector"] !== null)
    p.namespaceSelector = parseSelector(o["namespaceSelector"]);
  const b = obj(o["ipBlock"]);
  if (typeof b["cidr"] === "string")
    p.ipBlock = { cidr: b["cidr"], ...(Array.isArray(b["except"]) ? { except: b["except"].map(String) } : {}) };
  return p;
}

const parseRules = (v: unknown, peersKey: "from" | "to"): PolicyRule[] =>
  arr(v).map((r) => ({ peers: arr(obj(r)[peersKey]).map(parsePeer), ports: arr(obj(r)["ports"]).map(parsePort) }));

/** A NetworkPolicy object; policyTypes defaulted as the API does (Ingress, plus Egress with egress rules). */
export function parsePolicy(v: unknown): Policy {
  const m = obj(obj(v)["metadata"]);
  const spec = obj(obj(v)["spec"]);
  const given = Array.isArray(spec["policyTypes"]) ? spec["policyTypes"].map(String) : undefined;
  const types = given ?? (spec["egress"] !== undefined ? ["Ingress", "Egress"] : ["Ingress"]);
  return {
    namespace: String(m["namespace"] ?? ""),
    name: String(m["name"] ?? ""),
    podSelector: parseSelector(spec["podSelector"]),
    ...(types.includes("Ingress") ? { ingress: parseRules(spec["ingress"], "from") } : {}),
    ...(types.includes("Egress") ? { egress: parseRules(spec["egress"], "to") } : {}),
  };
}

export function parsePod(v: unknown): Pod {
  const m = obj(obj(v)["metadata"]);
  const spec = obj(obj(v)["spec"]);
  const st = obj(obj(v)["status"]);
  const ips = arr(st["podIPs"])
    .map((x) => obj(x)["ip"])
    .filter((x): x is string => typeof x === "string");
  if (ips.length === 0 && typeof st["podIP"] === "string" && st["podIP"] !== "") ips.push(st["podIP"]);
  const ports: PodPort[] = [];
  for (const c of arr(spec["containers"]))
    for (const p of arr(obj(c)["ports"])) {
      const o = obj(p);
      if (typeof o["containerPort"] !== "number") continue;
      ports.push({
        containerPort: o["containerPort"],
        protocol: typeof o["protocol"] === "string" ? o["protocol"] : "TCP",
        ...(typeof o["name"] === "string" ? { name: o["name"] } : {}),
      });
    }
  return {
    namespace: String(m["namespace"] ?? ""),
    name: String(m["name"] ?? ""),
    uid: String(m["uid"] ?? ""),
    labels: strMap(m["labels"]),
    ips,
    hostNetwork: spec["hostNetwork"] === true,
    ...(typeof st["hostIP"] === "string" && st["hostIP"] !== "" ? { hostIp: st["hostIP"] } : {}),
    finished: st["phase"] === "Succeeded" || st["phase"] === "Failed",
    ports,
  };
}

export function parseNamespace(v: unknown): Namespace {
  const m = obj(obj(v)["metadata"]);
  return { name: String(m["name"] ?? ""), labels: strMap(m["labels"]) };
}
