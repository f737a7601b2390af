// iptables rule sets as values: parse iptables-save output, and build the iptables-restore
// --noflush text that applies or removes a set atomically. Pure; the adapters run the text.
import type { IptablesDump, IptablesRuleSet, IptablesTable } from "./types.js";

const BUILTIN = new Set(["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]);

/** Parse `iptables-save` output into table → (chain → rules). */
export function parseIptablesSave(text: string): Map<string, IptablesDump> {
  const out = new Map<string, IptablesDump>();
  let cur: IptablesDump | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.startsWith("*")) {
      cur = new Map();
      out.set(line.slice(1), cur);
    } else if (line.startsWith(":") && cur !== undefined) {
      cur.set(line.slice(1).split(" ")[0]!, []);
    } else if (line.startsWith("-A ") && cur !== undefined) {
      const rest = line.slice(3);
      const sp = rest.indexOf(" ");
      const chain = sp < 0 ? rest : rest.slice(0, sp);
      const rule = sp < 0 ? "" : rest.slice(sp + 1);
      const rules = cur.get(chain) ?? [];
      rules.push(rule);
      cur.set(chain, rules);
    }
  }
  return out;
}

const tablesOf = (set: IptablesRuleSet): IptablesTable[] => [
  ...new Set([...set.chains.map((c) => c.table), ...set.jumps.map((j) => j.table)]),
];

/** Restore text that makes the chains hold exactly their rules and appends missing jumps. */
export function applyText(set: IptablesRuleSet, current: ReadonlyMap<string, IptablesDump>): string {
  const lines: string[] = [];
  for (const table of tablesOf(set)) {
    const dump = current.get(table) ?? new Map<string, string[]>();
    lines.push(`*${table}`);
    for (const c of set.chains.filter((c) => c.table === table)) {
      // Declaring a chain under --noflush creates it, or flushes it if it exists.
      lines.push(`:${c.name} - [0:0]`);
    }
    for (const c of set.chains.filter((c) => c.table === table)) {
      for (const r of c.rules) lines.push(`-A ${c.name} ${r}`);
    }
    for (const j of set.jumps.filter((j) => j.table === table)) {
      if (!(dump.get(j.chain) ?? []).includes(j.rule)) lines.push(`-A ${j.chain} ${j.rule}`);
    }
    lines.push("COMMIT");
  }
  return `${lines.join("\n")}\n`;
}

/** Restore text that removes the jumps and chains that exist; "" when nothing is left to remove. */
export function deleteText(set: IptablesRuleSet, current: ReadonlyMap<string, IptablesDump>): string {
  const lines: string[] = [];
  for (const table of tablesOf(set)) {
    const dump = current.get(table) ?? new Map<string, string[]>();
    const body: string[] = [];
    for (const j of set.jumps.filter((j) => j.table === table)) {
      const n = (dump.get(j.chain) ?? []).filter((r) => r === j.rule).length;
      for (let i = 0; i < n; i++) body.push(`-D ${j.chain} ${j.rule}`);
    }
    const chains = set.chains.filter((c) => c.table === table && dump.has(c.name) && !BUILTIN.has(c.name));
    // Any other rule still jumping into a chain we remove would make -X fail: remove those too.
    for (const [chain, rules] of dump) {
      for (const r of rules) {
        for (const c of chains) {
          if (
            r.endsWith(`-j ${c.name}`) &&
            !body.includes(`-D ${chain} ${r}`) &&
            !set.jumps.some((j) => j.chain === chain && j.rule === r)
          ) {
            body.push(`-D ${chain} ${r}`);
          }
        }
      }
    }
    for (const c of chains) body.push(`-F ${c.name}`);
    for (const c of chains) body.push(`-X ${c.name}`);
    if (body.length > 0) lines.push(`*${table}`, ...body, "COMMIT");
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

/** Whether every chain holds exactly its rules and every jump is present. */
export function missingFrom(set: IptablesRuleSet, current: ReadonlyMap<string, IptablesDump>): string[] {
  const problems: string[] = [];
  for (const c of set.chains) {
    const have = current.get(c.table)?.get(c.name);
    if (have === undefined) problems.push(`chain ${c.table}/${c.name} is missing`);
    else if (have.join("\n") !== c.rules.join("\n"))
      problems.push(`chain ${c.table}/${c.name} does not hold the expected rules`);
  }
  for (const j of set.jumps) {
    if (!(current.get(j.table)?.get(j.chain) ?? []).includes(j.rule))
      problems.push(`rule "${j.rule}" is missing from ${j.table}/${j.chain}`);
  }
  return problems;
}
