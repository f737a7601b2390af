// A tiny iptables-restore interpreter over in-memory tables, so the fake kernel runs the same
// restore text the real one does (and tests of the text builders exercise real semantics).
import type { IptablesDump } from "./types.js";

const BUILTINS: Record<string, string[]> = {
  filter: ["INPUT", "FORWARD", "OUTPUT"],
  nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
  mangle: ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
  raw: ["PREROUTING", "OUTPUT"],
};

export type FakeTables = Map<string, IptablesDump>;

export function emptyTables(): FakeTables {
  const t: FakeTables = new Map();
  for (const [name, chains] of Object.entries(BUILTINS)) t.set(name, new Map(chains.map((c) => [c, []])));
  return t;
}

function clone(t: FakeTables): FakeTables {
  return new Map([...t].map(([k, v]) => [k, new Map([...v].map(([c, r]) => [c, [...r]]))]));
}

/** Apply restore text with --noflush semantics; all or nothing. Throws with iptables-like messages. */
export function restore(tables: FakeTables, text: string): FakeTables {
  const next = clone(tables);
  let cur: IptablesDump | undefined;
  let n = 0;
  for (const raw of text.split("\n")) {
    n++;
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line === "COMMIT") continue;
    const fail = (why: string): never => {
      throw new Error(`iptables-restore: line ${n} failed: ${why}`);
    };
    if (line.startsWith("*")) {
      cur = next.get(line.slice(1));
      if (cur === undefined) fail(`unknown table ${line.slice(1)}`);
      continue;
    }
    if (cur === undefined) fail("no table selected");
    const table = cur!;
    if (line.startsWith(":")) {
      const name = line.slice(1).split(" ")[0]!;
      table.set(name, []);
      continue;
    }
    const m = /^(-[ADFX]) (\S+)(?: (.*))?$/.exec(line);
    if (m === null) fail(`cannot parse "${line}"`);
    const [, op, chain, rule = ""] = m!;
    const rules = table.get(chain!);
    if (rules === undefined) fail(`chain ${chain} does not exist`);
    switch (op) {
      case "-A":
        rules!.push(rule);
        break;
      case "-D": {
        const i = rules!.indexOf(rule);
        if (i < 0) fail("Bad rule (does a matching rule exist in that chain?)");
        rules!.splice(i, 1);
        break;
      }
      case "-F":
        rules!.length = 0;
        break;
      case "-X":
        if (rules!.length > 0) fail(`chain ${chain} is not empty`);
        for (const other of table.values())
          if (other.some((r) => r.endsWith(`-j ${chain}`))) fail(`chain ${chain} is still referenced`);
        table.delete(chain!);
        break;
    }
  }
  return next;
}
