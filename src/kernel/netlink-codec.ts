// The rtnetlink pieces the `netlink` package leaves as raw buffers: IFLA_LINKINFO for creating
// links, and reading a link's kind and peer back.

export function nla(type: number, payload: Buffer | Buffer[]): Buffer {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.concat(payload);
  const len = 4 + p.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  p.copy(out, 4);
  return out;
}

export const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
export const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s), Buffer.alloc(1)]);

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const NLA_F_NESTED = 0x8000;

export function macBytes(mac: string): Buffer {
  const parts = mac.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p)))
    throw new TypeError(`Cannot parse MAC address "${mac}"`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export const formatMac = (b: Uint8Array | undefined): string =>
  b === undefined ? "" : [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");

export function kindLinkinfo(kind: string): Buffer {
  return nla(IFLA_INFO_KIND, cstr(kind));
}

/** IFLA_LINKINFO for a veth whose peer may be created directly in another namespace. */
export function vethLinkinfo(peer: { name: string; netnsFd?: number; mac?: string; mtu?: number }): Buffer {
  const attrs: Buffer[] = [nla(IFLA_IFNAME, cstr(peer.name))];
  if (peer.mac !== undefined) attrs.push(nla(IFLA_ADDRESS, macBytes(peer.mac)));
  if (peer.mtu !== undefined) attrs.push(nla(IFLA_MTU, u32(peer.mtu)));
  if (peer.netnsFd !== undefined) attrs.push(nla(IFLA_NET_NS_FD, u32(peer.netnsFd)));
  const ifinfomsg = Buffer.alloc(16);
  return Buffer.concat([
    kindLinkinfo("veth"),
    nla(IFLA_INFO_DATA | NLA_F_NESTED, nla(VETH_INFO_PEER | NLA_F_NESTED, [ifinfomsg, ...attrs])),
  ]);
}

/** Walk the attributes of a nested payload. */
export function* attrs(buf: Buffer): Generator<{ type: number; data: Buffer }> {
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4 || off + len > buf.length) return;
    yield { type, data: buf.subarray(off + 4, off + len) };
    off += (len + 3) & ~3;
  }
}

/** The IFLA_INFO_KIND string of a link, or undefined for a link without one (a NIC, lo). */
export function linkKind(linkinfo: Buffer | undefined): string | undefined {
  if (linkinfo === undefined) return undefined;
  for (const a of attrs(linkinfo)) {
    if (a.type === IFLA_INFO_KIND) return a.data.toString("utf8").replace(/\0+$/, "");
  }
  return undefined;
}
