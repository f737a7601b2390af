// The journal on disk: what a writer committed is what a new writer or a reader loads; a line cut
// short by a crash is dropped (and cut off before new lines follow); compaction keeps the records.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { FileJournal, readJournal } from "./journal.js";

type R = { k: string; v: number };
const keyOf = (r: unknown): string | undefined => (r as R | undefined)?.k;
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-journal-"));
const sorted = (xs: unknown[]): R[] => (xs as R[]).sort((a, b) => a.k.localeCompare(b.k));

describe("FileJournal", () => {
  it("a new writer and a reader load what was committed; deletions hold", () => {
    const dir = tmp();
    try {
      const j = new FileJournal<R>(dir, keyOf);
      j.commit([{ put: { k: "a", v: 1 } }, { put: { k: "b", v: 1 } }], true);
      j.commit([{ put: { k: "a", v: 2 } }, { del: "b" }], false);
      assert.deepEqual(sorted(readJournal(dir, keyOf)), [{ k: "a", v: 2 }]);
      j.close();
      assert.deepEqual(sorted(new FileJournal<R>(dir, keyOf).records()), [{ k: "a", v: 2 }]);
      assert.equal(fs.statSync(path.join(dir, "journal.0")).mode & 0o777, 0o600, "root-only");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a line cut short by a crash is not a change: dropped, and cut off before the next line", () => {
    const dir = tmp();
    try {
      const j = new FileJournal<R>(dir, keyOf);
      j.commit([{ put: { k: "a", v: 1 } }], true);
      j.close();
      fs.appendFileSync(path.join(dir, "journal.0"), '[{"put":{"k":"b","v":');
      assert.deepEqual(sorted(readJournal(dir, keyOf)), [{ k: "a", v: 1 }]);
      const again = new FileJournal<R>(dir, keyOf);
      again.commit([{ put: { k: "c", v: 3 } }], true);
      again.close();
      assert.deepEqual(sorted(readJournal(dir, keyOf)), [
        { k: "a", v: 1 },
        { k: "c", v: 3 },
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("compaction: a snapshot of the records and a new journal; the old journal goes", () => {
    const dir = tmp();
    try {
      const j = new FileJournal<R>(dir, keyOf);
      for (let i = 0; i < 600; i++) j.commit([{ put: { k: `k${i % 7}`, v: i } }], false);
      const names = fs.readdirSync(dir).sort();
      assert.ok(names.includes("snapshot.json"), names.join(" "));
      assert.equal(names.filter((n) => n.startsWith("journal.")).length, 1, "one journal");
      assert.notEqual(
        names.find((n) => n.startsWith("journal.")),
        "journal.0",
      );
      const want = Array.from({ length: 7 }, (_, k) => ({ k: `k${k}`, v: 599 - ((599 - k) % 7) }));
      assert.deepEqual(sorted(readJournal(dir, keyOf)), sorted(want));
      j.close();
      assert.deepEqual(sorted(new FileJournal<R>(dir, keyOf).records()), sorted(want));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
