// JSON-lines logging to a file. Plugins never write logs to stdout (that is the CNI result) and a
// failing log write never fails the operation. Values under secret-looking keys are masked.

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds these fields to every line. */
  child(fields: Record<string, unknown>): Logger;
}

export interface LogSink {
  write(line: string): void;
}

const SECRET_KEY = /pass(word)?|secret|token|credential|authorization|x-auth|api[-_]?key/i;

/** Deep-copy `v`, masking any value whose key looks secret. */
export function redact(v: unknown, depth = 0): unknown {
  if (depth > 6 || v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map((x) => redact(x, depth + 1));
  if (v instanceof Error)
    return {
      name: v.name,
      message: v.message,
      ...(v.cause === undefined
        ? {}
        : { cause: redact(v.cause instanceof Error ? v.cause.message : v.cause, depth + 1) }),
    };
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(v))
    out[k] =
      SECRET_KEY.test(k) && val !== undefined && val !== null && val !== "" ? "[redacted]" : redact(val, depth + 1);
  return out;
}

export function createLogger(
  sink: LogSink,
  opts: { level?: Level; now?: () => Date; fields?: Record<string, unknown> } = {},
): Logger {
  const min = ORDER[opts.level ?? "info"];
  const now = opts.now ?? (() => new Date());
  const base = opts.fields ?? {};
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < min) return;
    try {
      sink.write(
        `${JSON.stringify({ time: now().toISOString(), level, msg, ...(redact({ ...base, ...fields }) as object) })}\n`,
      );
    } catch {
      // logging must never break the operation
    }
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (f) => createLogger(sink, { ...opts, fields: { ...base, ...f } }),
  };
}

export const nullLogger: Logger = createLogger({ write: () => {} });

/** Collects lines in memory (tests). */
export function memorySink(): LogSink & { lines: string[] } {
  const lines: string[] = [];
  return { lines, write: (l) => void lines.push(l) };
}
