// A DNS server for a test node's own resolver: answers A queries for the names it is given, NXDOMAIN
// (rcode 3) for anything else. Run inside a network namespace of the test's (ip netns exec … node).
//   node tiny-dns.js ADDR PORT name=ip [name=ip ...]
import * as dgram from "node:dgram";

export function dnsAnswer(query: Buffer, names: ReadonlyMap<string, string>): Buffer | undefined {
  if (query.length < 12) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < query.length && query[at] !== 0) {
    const n = query[at]!;
    labels.push(query.subarray(at + 1, at + 1 + n).toString("ascii"));
    at += 1 + n;
  }
  const qEnd = at + 5; // the zero label, QTYPE, QCLASS
  if (qEnd > query.length) return undefined;
  const qtype = query.readUInt16BE(at + 1);
  const ip = names.get(labels.join(".").toLowerCase());
  const header = Buffer.from(query.subarray(0, 12));
  header[2] = 0x84 | (query[2]! & 0x01); // QR, AA, RD as asked
  header[3] = ip === undefined ? 0x03 : 0x00; // NXDOMAIN, or no error
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(ip !== undefined && qtype === 1 ? 1 : 0, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(0, 10);
  const question = query.subarray(12, qEnd);
  if (ip === undefined || qtype !== 1) return Buffer.concat([header, question]);
  const answer = Buffer.alloc(16);
  answer.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  answer.writeUInt16BE(1, 2); // A
  answer.writeUInt16BE(1, 4); // IN
  answer.writeUInt32BE(30, 6); // TTL
  answer.writeUInt16BE(4, 10);
  ip.split(".").forEach((b, i) => answer.writeUInt8(Number(b), 12 + i));
  return Buffer.concat([header, question, answer]);
}

if (process.argv[1]?.endsWith("tiny-dns.js") === true) {
  const [addr, port, ...pairs] = process.argv.slice(2);
  const names = new Map(pairs.map((p) => p.split("=") as [string, string]));
  const s = dgram.createSocket("udp4");
  s.on("message", (m, r) => {
    const a = dnsAnswer(m, names);
    if (a !== undefined) s.send(a, r.port, r.address);
  });
  s.bind(Number(port ?? 53), addr ?? "127.0.0.1");
}
