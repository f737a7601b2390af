// CHECK helpers: compare the kernel with what a plugin planned and say what differs (code 112).
import { CniError, CniCode } from "../cni/errors.js";
import type { Kernel, Netns, Route } from "../kernel/types.js";

const where = (ns: Netns): string => (ns === "self" ? "the host" : `the pod (${ns})`);
const fail = (msg: string): never => {
  throw new CniError(CniCode.CheckFailed, msg);
};

export async function expectLink(k: Kernel, ns: Netns, name: string, want: { up?: boolean; mac?: string; kind?: string } = {}): Promise<void> {
  const l = await k.getLink(ns, name);
  if (l === undefined) return fail(`Interface ${name} is missing in ${where(ns)}`);
  if (want.up === true && !l.up) fail(`Interface ${name} in ${where(ns)} is down`);
  if (want.mac !== undefined && l.mac !== want.mac.toLowerCase()) fail(`Interface ${name} in ${where(ns)} has MAC ${l.mac}, expected ${want.mac}`);
  if (want.kind !== undefined && l.kind !== want.kind) fail(`Interface ${name} in ${where(ns)} is a ${l.kind}, expected a ${want.kind}`);
}

export async function expectAddress(k: Kernel, ns: Netns, dev: string, cidr: string): Promise<void> {
  if (!(await k.listAddresses(ns, dev)).some((a) => a.cidr === cidr)) fail(`Address ${cidr} is missing on ${dev} in ${where(ns)}`);
}

export async function expectRoute(k: Kernel, ns: Netns, want: Route): Promise<void> {
  const routes = await k.listRoutes(ns, want.table ?? 254);
  const ok = routes.some((r) => r.dst === want.dst && (want.gw === undefined || r.gw === want.gw) && (want.dev === undefined || r.dev === want.dev) &&
    (want.scope === undefined || r.scope === want.scope));
  if (!ok) fail(`Route ${want.dst}${want.gw === undefined ? "" : ` via ${want.gw}`}${want.dev === undefined ? "" : ` dev ${want.dev}`}${want.table === undefined ? "" : ` table ${want.table}`} is missing in ${where(ns)}`);
}

export async function expectNeighbour(k: Kernel, ns: Netns, want: { dev: string; ip: string; mac?: string; proxy?: boolean }): Promise<void> {
  const list = await k.listNeighbours(ns, want.proxy === true ? { proxy: true } : {});
  const n = list.find((x) => x.dev === want.dev && x.ip === want.ip);
  if (n === undefined) return fail(`${want.proxy === true ? "Proxy-ARP entry" : "Neighbour"} ${want.ip} on ${want.dev} is missing in ${where(ns)}`);
  if (want.mac !== undefined && n.mac !== want.mac.toLowerCase()) fail(`Neighbour ${want.ip} on ${want.dev} in ${where(ns)} points at ${n.mac ?? "nothing"}, expected ${want.mac}`);
}
