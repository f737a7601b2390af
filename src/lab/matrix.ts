// The lab's connectivity matrix: each path tried from inside the namespaces (ping, or a TCP request
// answered by a pod's echo server), with how long the first success took.
import { inNetns, run } from "./proc.js";

export interface Check {
  path: string;
  from: string;
  to: string;
  /** Namespace name the probe runs in. */
  ns: string;
  target: string;
  kind: "ping" | "tcp";
  port?: number;
  /** For tcp: what the far end answers. */
  expect?: string;
}

export interface CheckResult extends Check {
  ok: boolean;
  ms: number;
  detail: string;
}

export async function runCheck(c: Check): Promise<CheckResult> {
  const argv =
    c.kind === "ping"
      ? ["ping", "-c", "1", "-W", "2", "-q", c.target]
      : ["nc", "-d", "-w", "3", c.target, String(c.port)];
  let last = { code: 1, stdout: "", stderr: "", ms: 0 };
  for (let attempt = 0; attempt < 3; attempt++) {
    last = await run(inNetns(c.ns, argv), { timeoutMs: 10_000 });
    const ok = c.kind === "ping" ? last.code === 0 : last.stdout.trim() === c.expect;
    if (ok) return { ...c, ok, ms: last.ms, detail: c.kind === "tcp" ? `"${last.stdout.trim()}"` : "" };
  }
  return { ...c, ok: false, ms: last.ms, detail: (last.stderr || last.stdout).trim().split("\n").pop() ?? "" };
}

export function renderMatrix(rows: CheckResult[]): string {
  const head = ["", "path", "from", "to", "how", "ms", ""];
  const cells = rows.map((r) => [
    r.ok ? "✓" : "✗",
    r.path,
    r.from,
    r.to,
    r.kind === "tcp" ? `tcp/${r.port}` : "ping",
    r.ok ? r.ms.toFixed(1) : "-",
    r.detail,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => [...c[i]!].length)));
  const line = (c: string[]): string =>
    c
      .map((x, i) => x + " ".repeat(w[i]! - [...x].length))
      .join("  ")
      .trimEnd();
  return [line(head), line(w.map((n) => "-".repeat(n))), ...cells.map(line)].join("\n");
}
