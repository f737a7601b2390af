// Small state files written so that neither a crash nor a power loss leaves a torn or missing
// record: a temporary file named by the writer's PID, fsynced, renamed over the old one, and the
// directory fsynced. A writer killed midway leaves only its temporary file, which the next reader
// of the directory removes once that PID is gone.
import * as fs from "node:fs";
import * as path from "node:path";

const TEMP = /\.(\d+)\.tmp$/;

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

/** Remove a file, durably; a missing one is fine. */
export function removeFileDurably(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  syncDir(path.dirname(file));
}

function syncDir(dir: string): void {
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
