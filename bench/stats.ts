// Summary statistics and a plain-text table for benchmark output.
export function summary(samples: number[]): {
  n: number;
  min: number;
  median: number;
  p95: number;
  p99: number;
  max: number;
} {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? NaN;
  return { n: s.length, min: s[0] ?? NaN, median: q(0.5), p95: q(0.95), p99: q(0.99), max: s[s.length - 1] ?? NaN };
}

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) =>
    r.map((c) => (typeof c === "number" ? (Number.isInteger(c) ? String(c) : c.toFixed(Math.abs(c) < 10 ? 2 : 1)) : c)),
  );
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]): string => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(headers), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...cells.map(line)].join("\n");
}

export const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
