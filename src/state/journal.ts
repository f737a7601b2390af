// A keyed set of JSON records kept as a snapshot plus an append-only journal: every change is one
// line appended (one transition of the caller's, applied whole or not at all), fsynced when the
// caller says it must survive a power loss. Compared with a file per record, a change that moves
// an address from one record to another is one write, not two that a crash can split. One writer
// at a time (the caller holds the node lock); readers may read at any moment.
//
//   <dir>/snapshot.json   {"gen": G, "records": [...]}   written durably, then renamed over
//   <dir>/journal.G       one JSON array of ops per line, appended after snapshot G
import * as fs from "node:fs";
import * as path from "node:path";
import { syncDir, writeFileDurably } from "./files.js";

export type Op<R> = { put: R } | { del: string };

interface Snapshot {
  gen: number;
  records: unknown[];
}

const SNAPSHOT = "snapshot.json";
const journalName = (gen: number): string => `journal.${gen}`;

function readSnapshot(dir: string): Snapshot {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(dir, SNAPSHOT), "utf8")) as Snapshot;
    if (typeof s.gen === "number" && Array.isArray(s.records)) return s;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  return { gen: 0, records: [] };
}

/** The complete lines of a journal (a torn last line, from a write cut short, is not one). */
function journalLines(text: string): { lines: unknown[][]; goodBytes: number } {
  const lines: unknown[][] = [];
  let at = 0;
  for (;;) {
    const nl = text.indexOf("\n", at);
    if (nl < 0) break;
    try {
      const ops = JSON.parse(text.slice(at, nl)) as unknown;
      if (!Array.isArray(ops)) break;
      lines.push(ops);
    } catch {
      break;
    }
    at = nl + 1;
  }
  return { lines, goodBytes: Buffer.byteLength(text.slice(0, at)) };
}

function replay(records: Map<string, unknown>, lines: unknown[][], keyOf: (r: unknown) => string | undefined): void {
  for (const ops of lines)
    for (const op of ops as Array<{ put?: unknown; del?: unknown }>) {
      if (typeof op.del === "string") records.delete(op.del);
      else if (op.put !== undefined) {
        const k = keyOf(op.put);
        if (k !== undefined) records.set(k, op.put);
      }
    }
}

/**
 * Read the records as they are now, without the writer's lock (status, doctor, gc --dry-run):
 * the snapshot and its journal; read again when a compaction replaced both meanwhile.
 */
export function readJournal(dir: string, keyOf: (r: unknown) => string | undefined): unknown[] {
  for (let attempt = 0; ; attempt++) {
    const snap = readSnapshot(dir);
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, journalName(snap.gen)), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      if (snap.gen !== readSnapshot(dir).gen && attempt < 20) continue;
      text = "";
    }
    const m = new Map<string, unknown>();
    replay(m, [snap.records.map((r) => ({ put: r })), ...journalLines(text).lines], keyOf);
    return [...m.values()];
  }
}

/** The writer's side: open (loading what is there), then commit changes. */
export class FileJournal<R> {
  readonly #dir: string;
  readonly #keyOf: (r: unknown) => string | undefined;
  readonly #records = new Map<string, unknown>();
  #gen = 0;
  #fd: number;
  #lines = 0;

  /** Open `dir` for writing (the caller holds the node lock); `records` is what it holds. */
  constructor(dir: string, keyOf: (r: unknown) => string | undefined) {
    this.#dir = dir;
    this.#keyOf = keyOf;
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const snap = readSnapshot(dir);
    this.#gen = snap.gen;
    const file = path.join(dir, journalName(this.#gen));
    let text = "";
    let created = false;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      created = true;
    }
    const { lines, goodBytes } = journalLines(text);
    replay(this.#records, [snap.records.map((r) => ({ put: r })), ...lines], keyOf);
    this.#lines = lines.length;
    this.#fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o600);
    // A torn last line (a write cut short by a crash) is cut off, so new lines follow good ones.
    if (Buffer.byteLength(text) !== goodBytes) fs.ftruncateSync(this.#fd, goodBytes);
    fs.closeSync(this.#fd);
    this.#fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND, 0o600);
    // A new journal's name must outlive a power loss too, or its durable lines would.
    if (created) syncDir(dir);
    // Journals of earlier generations (a compaction cut short) are covered by the snapshot.
    for (const n of fs.readdirSync(dir))
      if (/^journal\.\d+$/.test(n) && n !== journalName(this.#gen)) fs.rmSync(path.join(dir, n), { force: true });
  }

  records(): R[] {
    return [...this.#records.values()] as R[];
  }

  commit(ops: ReadonlyArray<Op<R>>, durable: boolean): void {
    fs.writeSync(this.#fd, `${JSON.stringify(ops)}\n`);
    if (durable) fs.fdatasyncSync(this.#fd);
    replay(this.#records, [ops as unknown[]], this.#keyOf);
    this.#lines++;
    if (this.#lines > Math.max(256, 4 * this.#records.size)) this.#compact();
  }

  // A new snapshot (durable), then a new empty journal; the old one goes. A crash in between leaves
  // the old journal, whose changes the new snapshot holds already (replaying them again is harmless).
  #compact(): void {
    const gen = this.#gen + 1;
    const fresh = path.join(this.#dir, journalName(gen));
    fs.writeFileSync(fresh, "", { mode: 0o600 });
    writeFileDurably(path.join(this.#dir, SNAPSHOT), JSON.stringify({ gen, records: [...this.#records.values()] }));
    fs.closeSync(this.#fd);
    fs.rmSync(path.join(this.#dir, journalName(this.#gen)), { force: true });
    this.#gen = gen;
    this.#fd = fs.openSync(fresh, fs.constants.O_WRONLY | fs.constants.O_APPEND, 0o600);
    this.#lines = 0;
  }

  close(): void {
    fs.closeSync(this.#fd);
  }
}

/**
 * A journal in memory (tests): what was committed, in order, with which entries were durable, so
 * a test can replay a crash (everything committed survives) or a power loss (the durable entries
 * survive, and any number of the entries after the last durable one).
 */
export class MemoryJournal<R> {
  readonly entries: Array<{ ops: ReadonlyArray<Op<R>>; durable: boolean }> = [];
  readonly #keyOf: (r: R) => string;
  constructor(keyOf: (r: R) => string, initial: readonly R[] = []) {
    this.#keyOf = keyOf;
    if (initial.length > 0) this.entries.push({ ops: initial.map((put) => ({ put })), durable: true });
  }
  commit(ops: ReadonlyArray<Op<R>>, durable: boolean): void {
    this.entries.push({ ops: structuredClone(ops), durable });
  }
  /** The records after the first `upTo` entries (all by default). */
  records(upTo = this.entries.length): R[] {
    const m = new Map<string, R>();
    for (const e of this.entries.slice(0, upTo))
      for (const op of e.ops) {
        if ("del" in op) m.delete(op.del);
        else m.set(this.#keyOf(op.put), structuredClone(op.put));
      }
    return [...m.values()];
  }
  /** After a power loss: how many entries may have survived at least (all up to the last durable one). */
  durablePrefix(): number {
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]!.durable) return i + 1;
    return 0;
  }
  /** Keep only the first `n` entries (what a power loss left). */
  truncate(n: number): void {
    this.entries.length = n;
  }
}
