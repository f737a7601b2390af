// Where a state directory keeps its address ledger (<stateDir>/ledger: a snapshot and a journal),
// opened by the node's one writer, read by anyone. An upgraded node's earlier records (one file per
// allocation under <stateDir>/allocations) are taken into the ledger the first time it is opened.
import * as fs from "node:fs";
import * as path from "node:path";
import { FileJournal, readJournal } from "../state/journal.js";
import { fromLegacy, parseRec, storedKey, type LegacyAllocation } from "./ledger/codec.js";
import { Ledger } from "./ledger/ledger.js";
import { keyOf, type Rec } from "./ledger/records.js";

export const ledgerDir = (stateDir: string): string => path.join(stateDir, "ledger");
const legacyDir = (stateDir: string): string => path.join(stateDir, "allocations");

function legacyRecords(stateDir: string): { recs: Rec[]; files: string[] } {
  const dir = legacyDir(stateDir);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return { recs: [], files: [] };
  }
  const recs: Rec[] = [];
  const files: string[] = [];
  for (const n of names) {
    const f = path.join(dir, n);
    files.push(f);
    if (!n.endsWith(".json")) continue;
    try {
      const r = fromLegacy(JSON.parse(fs.readFileSync(f, "utf8")) as LegacyAllocation);
      if (r !== undefined) recs.push(r);
    } catch {
      // unreadable: nothing to take over
    }
  }
  return { recs, files };
}

export interface OpenLedger {
  ledger: Ledger;
  /** Done writing (the node lock is about to go). */
  close(): void;
  /** Writing again after the node lock was let go and taken again: the ledger as others left it. */
  reopen(heldElsewhere: (key: string) => boolean): void;
}

function openJournal(stateDir: string): { journal: FileJournal<Rec>; recs: Rec[] } {
  const journal = new FileJournal<Rec>(ledgerDir(stateDir), storedKey);
  const legacy = legacyRecords(stateDir);
  if (legacy.recs.length > 0)
    journal.commit(
      legacy.recs.map((put) => ({ put })),
      true,
    );
  for (const f of legacy.files) fs.rmSync(f, { force: true });
  if (legacy.files.length > 0) fs.rmSync(legacyDir(stateDir), { recursive: true, force: true });
  return { journal, recs: journal.records().flatMap((x) => parseRec(x) ?? []) };
}

/** Open a state directory's ledger for writing. The caller is the node's one writer (it holds the node lock). */
export function openLedger(stateDir: string): OpenLedger {
  let { journal, recs } = openJournal(stateDir);
  const ledger = new Ledger(journal, recs);
  return {
    ledger,
    close: () => journal.close(),
    reopen: (heldElsewhere) => {
      ({ journal, recs } = openJournal(stateDir));
      ledger.reload(journal, recs, heldElsewhere);
    },
  };
}

/** A state directory's records as they are now, read without the node lock (status, doctor, gc). */
export function readLedger(stateDir: string): Rec[] {
  const recs = new Map<string, Rec>();
  for (const x of readJournal(ledgerDir(stateDir), storedKey)) {
    const r = parseRec(x);
    if (r !== undefined) recs.set(keyOf(r), r);
  }
  // Records of an earlier version that no writer has taken over yet.
  for (const r of legacyRecords(stateDir).recs) if (!recs.has(keyOf(r))) recs.set(keyOf(r), r);
  return [...recs.values()];
}
