// IP and CIDR values: parse, format, compare, contain. Pure; IPv4 and IPv6.

export type Family = 4 | 6;

export interface Ip {
  family: Family;
  /** The address as an unsigned integer (32 or 128 bits). */
  value: bigint;
}

export interface Cidr {
  ip: Ip;
  prefix: number;
}

const bits = (f: Family): number => (f === 4 ? 32 : 128);

function parseV4(s: string): bigint | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p.startsWith("0"))) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | undefined {
  if (s.includes("%")) return undefined;
  let tail4: bigint | undefined;
  let text = s;
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".") && lastColon >= 0) {
    tail4 = parseV4(s.slice(lastColon + 1));
    if (tail4 === undefined) return undefined;
    text = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const dbl = text.split("::");
  if (dbl.length > 2) return undefined;
  const head = dbl[0] === "" ? [] : dbl[0]!.split(":");
  const tail = dbl.length === 2 ? (dbl[1] === "" ? [] : dbl[1]!.split(":")) : [];
  const missing = 8 - head.length - tail.length;
  if (dbl.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(dbl.length === 2 ? missing : 0).fill("0"), ...tail];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== undefined) v = (v & ~0xffffffffn) | tail4;
  return v;
}

export function tryParseIp(s: string): Ip | undefined {
  if (s.includes(":")) {
    const v = parseV6(s);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseV4(s);
  return v === undefined ? undefined : { family: 4, value: v };
}

export function parseIp(s: string): Ip {
  const ip = tryParseIp(s);
  if (ip === undefined) throw new TypeError(`Cannot parse IP address "${s}"`);
  return ip;
}

export function formatIp(ip: Ip): string {
  if (ip.family === 4) {
    return [24n, 16n, 8n, 0n].map((sh) => Number((ip.value >> sh) & 0xffn)).join(".");
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (≥ 2) of zero groups.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

/** Normalise an address string ("010.0.0.1" is rejected; "FD00::0001" → "fd00::1"). */
export const normaliseIp = (s: string): string => formatIp(parseIp(s));

export function tryParseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf("/");
  if (slash < 0) return undefined;
  const ip = tryParseIp(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (ip === undefined || !/^\d{1,3}$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > bits(ip.family)) return undefined;
  return { ip, prefix };
}

export function parseCidr(s: string): Cidr {
  const c = tryParseCidr(s);
  if (c === undefined) throw new TypeError(`Cannot parse CIDR "${s}"`);
  return c;
}

export const formatCidr = (c: Cidr): string => `${formatIp(c.ip)}/${c.prefix}`;

function mask(f: Family, prefix: number): bigint {
  const b = BigInt(bits(f));
  return ((1n << BigInt(prefix)) - 1n) << (b - BigInt(prefix));
}

/** The network of a CIDR (host bits cleared). */
export function networkOf(c: Cidr): Cidr {
  return { ip: { family: c.ip.family, value: c.ip.value & mask(c.ip.family, c.prefix) }, prefix: c.prefix };
}

export function broadcastOf(c: Cidr): Ip {
  const all = (1n << BigInt(bits(c.ip.family))) - 1n;
  return {
    family: c.ip.family,
    value: (c.ip.value & mask(c.ip.family, c.prefix)) | (all & ~mask(c.ip.family, c.prefix)),
  };
}

export function cidrContains(c: Cidr, ip: Ip): boolean {
  if (c.ip.family !== ip.family) return false;
  const m = mask(c.ip.family, c.prefix);
  return (c.ip.value & m) === (ip.value & m);
}

/** True if `inner` lies wholly inside `outer`. */
export const cidrCovers = (outer: Cidr, inner: Cidr): boolean =>
  inner.prefix >= outer.prefix && cidrContains(outer, inner.ip);

export const ipEquals = (a: Ip, b: Ip): boolean => a.family === b.family && a.value === b.value;

export const isHostCidr = (c: Cidr): boolean => c.prefix === bits(c.ip.family);

export const hostCidr = (ip: Ip): Cidr => ({ ip, prefix: bits(ip.family) });

export const addToIp = (ip: Ip, n: bigint): Ip => ({ family: ip.family, value: ip.value + n });

/** The address in network byte order, for netlink. */
export function ipBytes(ip: Ip): Buffer {
  const n = bits(ip.family) / 8;
  const b = Buffer.alloc(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

export function ipFromBytes(b: Uint8Array): Ip {
  if (b.length !== 4 && b.length !== 16) throw new TypeError(`Cannot read an IP address from ${b.length} bytes`);
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return { family: b.length === 4 ? 4 : 6, value: v };
}

export const compareIps = (a: Ip, b: Ip): number =>
  a.family !== b.family ? a.family - b.family : a.value < b.value ? -1 : a.value > b.value ? 1 : 0;

/** Number of addresses in a CIDR. */
export const cidrSize = (c: Cidr): bigint => 1n << BigInt(bits(c.ip.family) - c.prefix);

/**
 * Collapse a set of host addresses into the fewest aligned CIDRs that cover exactly that set
 * (e.g. 10.0.0.0–10.0.0.3 → 10.0.0.0/30). Input order does not matter.
 */
export function aggregate(ips: readonly Ip[], minPrefix = 0): Cidr[] {
  const fam = new Map<Family, bigint[]>();
  for (const ip of ips) {
    const l = fam.get(ip.family) ?? [];
    l.push(ip.value);
    fam.set(ip.family, l);
  }
  const out: Cidr[] = [];
  for (const [f, values] of fam) {
    const total = bits(f);
    let cur = new Set(values.map((v) => v));
    let prefix = total;
    let blocks: Array<{ v: bigint; p: number }> = [];
    // Bottom-up: merge sibling blocks of equal size until nothing merges.
    while (prefix > minPrefix) {
      const size = 1n << BigInt(total - prefix);
      const next = new Set<bigint>();
      const kept = new Set(cur);
      for (const v of cur) {
        const parent = v & ~((size << 1n) - 1n);
        const sibling = parent === v ? v + size : parent;
        if (kept.has(v) && kept.has(sibling)) {
          next.add(parent);
          kept.delete(v);
          kept.delete(sibling);
        }
      }
      for (const v of kept) blocks.push({ v, p: prefix });
      if (next.size === 0) {
        cur = new Set();
        break;
      }
      cur = next;
      prefix--;
    }
    for (const v of cur) blocks.push({ v, p: prefix });
    blocks = blocks.sort((a, b) => (a.v < b.v ? -1 : a.v > b.v ? 1 : 0));
    for (const b of blocks) out.push({ ip: { family: f, value: b.v }, prefix: b.p });
  }
  return out;
}
