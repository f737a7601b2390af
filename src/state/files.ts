// Small state files written so that neither a crash nor a power loss leaves a torn or missing
// record: a temporary file named by the writer's PID, fsynced, renamed over the old one, and the
// directory fsynced. A writer killed midway leaves only its temporary file, which the next reader
// of the directory removes once that PID is gone.
import * as fs from "node:fs";
import * as path from "node:path";

const TEMP = /\.(\d+)\.tmp$/;

/**
 * Write `data` to `file` (mode 0600) atomically: a crash leaves the old content or the new, never
 * a torn file. `durable` also survives a power loss (fsync of the file and its directory, ~4 ms on
 * this machine's disk): needed only for what outlives the kernel state it describes — an intent
 * recorded before a cloud write — since pods, links and routes do not survive a power loss either.
 */
export function writeFileAtomic(file: string, data: string, opts: { durable: boolean }): void {
  if (opts.durable) return writeFileDurably(file, data);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

/** Write `data` to `file` (mode 0600) atomically and durably. */
export function writeFileDurably(file: string, data: string): void {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w", 0o600);
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  syncDir(dir);
}

/** fsync a directory: the names in it (a rename, a new file) survive a power loss. */
export function syncDir(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

// A killed writer whose parent died too may stay a zombie (state Z) until something reaps it: gone.
export const processAlive = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
};

/** Remove the temporary files of writers that are gone. Returns what was removed. */
export function removeStaleTemps(dir: string, names: readonly string[]): string[] {
  const gone: string[] = [];
  for (const n of names) {
    const m = TEMP.exec(n);
    if (m === null || processAlive(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, n), { force: true });
    gone.push(n);
  }
  return gone;
}
