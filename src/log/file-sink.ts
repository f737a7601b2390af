// A log sink appending to a file, creating its directory on first use (0700: logs may name pods).
import * as fs from "node:fs";
import * as path from "node:path";
import type { LogSink } from "./logger.js";

export function fileSink(file: string): LogSink {
  let ready = false;
  return {
    write(line: string): void {
      if (!ready) {
        fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
        ready = true;
      }
      fs.appendFileSync(file, line, { mode: 0o600 });
    },
  };
}
