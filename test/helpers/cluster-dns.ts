// The lab cluster's DNS (what CoreDNS's kubernetes plugin answers, the part the network e2e tests
// use): A records for Services (<svc>.<ns>.svc.cluster.local: the ClusterIP, or a headless
// Service's ready endpoints), endpoint host names (<host>.<svc>.<ns>.svc.cluster.local) and pods
// (<a-b-c-d>.<ns>.pod.cluster.local); NXDOMAIN for everything else (this machine reaches no other
// DNS). Runs in the control plane's namespace, watching the API with a ServiceAccount token.
//   node cluster-dns.js ADDR API_URL TOKEN_FILE CA_FILE
import * as dgram from "node:dgram";
import { inform } from "../../src/controller/informer.js";
import { nullLogger } from "../../src/log/logger.js";

interface Svc {
  ns: string;
  name: string;
  clusterIp: string;
}
interface Eps {
  ns: string;
  name: string;
  addrs: Array<{ ip: string; hostname?: string }>;
}

type Json = Record<string, unknown>;
const o = (v: unknown): Json => (typeof v === "object" && v !== null ? (v as Json) : {});
const a = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export function parseSvc(v: unknown): Svc {
  const m = o(o(v)["metadata"]);
  return { ns: String(m["namespace"]), name: String(m["name"]), clusterIp: String(o(o(v)["spec"])["clusterIP"] ?? "") };
}

export function parseEps(v: unknown): Eps {
  const m = o(o(v)["metadata"]);
  return {
    ns: String(m["namespace"]),
    name: String(m["name"]),
    addrs: a(o(v)["subsets"]).flatMap((s) =>
      a(o(s)["addresses"]).map((x) => {
        const e = o(x);
        return { ip: String(e["ip"]), ...(typeof e["hostname"] === "string" ? { hostname: e["hostname"] } : {}) };
      }),
    ),
  };
}

/** The addresses of a name, or undefined (NXDOMAIN). */
export function lookup(
  name: string,
  svc: (k: string) => Svc | undefined,
  eps: (k: string) => Eps | undefined,
): string[] | undefined {
  const l = name.toLowerCase().replace(/\.$/, "").split(".");
  const n = l.length;
  if (n >= 5 && l.slice(n - 3).join(".") === "svc.cluster.local") {
    if (n === 5) {
      const s = svc(`${l[1]}/${l[0]}`);
      if (s === undefined) return undefined;
      if (s.clusterIp !== "None" && s.clusterIp !== "") return [s.clusterIp];
      return (eps(`${l[1]}/${l[0]}`)?.addrs ?? []).map((x) => x.ip);
    }
    if (n === 6) {
      const hit = eps(`${l[2]}/${l[1]}`)?.addrs.filter((x) => x.hostname === l[0]) ?? [];
      return hit.length === 0 ? undefined : hit.map((x) => x.ip);
    }
  }
  if (n === 5 && l.slice(2).join(".") === "pod.cluster.local" && /^\d+-\d+-\d+-\d+$/.test(l[0]!))
    return [l[0]!.replace(/-/g, ".")];
  return undefined;
}

export function answer(q: Buffer, find: (name: string) => string[] | undefined): Buffer | undefined {
  if (q.length < 12) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < q.length && q[at] !== 0) {
    labels.push(q.subarray(at + 1, at + 1 + q[at]!).toString("ascii"));
    at += 1 + q[at]!;
  }
  if (at + 5 > q.length) return undefined;
  const qtype = q.readUInt16BE(at + 1);
  const ips = find(labels.join("."));
  const h = Buffer.from(q.subarray(0, 12));
  h[2] = 0x84 | (q[2]! & 0x01);
  h[3] = ips === undefined ? 0x03 : 0x00;
  const rrs = ips !== undefined && qtype === 1 ? ips.filter((x) => /^\d+\.\d+\.\d+\.\d+$/.test(x)) : [];
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(rrs.length, 6);
  h.writeUInt32BE(0, 8);
  const out = [h, q.subarray(12, at + 5)];
  for (const ip of rrs) {
    const r = Buffer.alloc(16);
    r.writeUInt16BE(0xc00c, 0);
    r.writeUInt16BE(1, 2);
    r.writeUInt16BE(1, 4);
    r.writeUInt32BE(5, 6);
    r.writeUInt16BE(4, 10);
    ip.split(".").forEach((b, i) => r.writeUInt8(Number(b), 12 + i));
    out.push(r);
  }
  return Buffer.concat(out);
}

if (process.argv[1]?.endsWith("cluster-dns.js") === true) {
  const [addr, apiUrl, tokenFile, caCert] = process.argv.slice(2) as [string, string, string, string];
  const access = { apiUrl, tokenFile, caCert };
  const svcs = inform(access, "/api/v1/services", parseSvc, () => {}, nullLogger);
  const eps = inform(access, "/api/v1/endpoints", parseEps, () => {}, nullLogger);
  const sock = dgram.createSocket("udp4");
  sock.on("message", (msg, from) => {
    const r = answer(msg, (name) => lookup(name, svcs.get, eps.get));
    if (r !== undefined) sock.send(r, from.port, from.address);
  });
  sock.bind(53, addr, () => process.stdout.write(`cluster DNS on ${addr}:53\n`));
}
