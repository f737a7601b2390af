// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
// exposition format (version 0.0.4) the way Prometheus and promtool expect it: one HELP and one TYPE
// per family, a histogram as cumulative `_bucket{le=…}` series ending in `+Inf`, then `_sum` and
// `_count`. (A dependency-free registry: the node agent and the controller are the only users.)
import { performance } from "node:perf_hooks";
import type { HttpFetch } from "../openstack/http.js";

type Labels = Record<string, string>;

interface Series {
  labels: Labels;
  value: number;
}
interface HistSeries {
  labels: Labels;
  /** Observations at or below each bound (not cumulative; summed when rendered). */
  counts: number[];
  sum: number;
  count: number;
}

type Family =
  | { name: string; help: string; type: "counter" | "gauge"; values: Map<string, Series> }
  | { name: string; help: string; type: "histogram"; buckets: readonly number[]; values: Map<string, HistSeries> };

const labelKey = (l: Labels): string =>
  Object.keys(l)
    .sort()
    .map((k) => `${k}=${l[k]}`)
    .join(",");
const esc = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const escHelp = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
const fmtLabels = (l: Labels): string =>
  Object.keys(l).length === 0
    ? ""
    : `{${Object.entries(l)
        .map(([k, v]) => `${k}="${esc(v)}"`)
        .join(",")}}`;
const fmtNum = (v: number): string => (v === Infinity ? "+Inf" : v === -Infinity ? "-Inf" : String(v));

export class Metrics {
  readonly #families = new Map<string, Family>();

  #family<T extends Family["type"]>(name: string, help: string, type: T, buckets?: readonly number[]): Family {
    let f = this.#families.get(name);
    if (f === undefined) {
      f =
        type === "histogram"
          ? { name, help, type: "histogram", buckets: buckets ?? [], values: new Map() }
          : { name, help, type: type as "counter" | "gauge", values: new Map() };
      this.#families.set(name, f);
    } else if (f.type !== type) throw new Error(`metric ${name} is a ${f.type}, not a ${type}`);
    return f;
  }

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const f = this.#family(name, help, "counter") as Extract<Family, { type: "counter" | "gauge" }>;
    const k = labelKey(labels);
    f.values.set(k, { labels, value: (f.values.get(k)?.value ?? 0) + by });
  }

  set(name: string, help: string, value: number, labels: Labels = {}): void {
    const f = this.#family(name, help, "gauge") as Extract<Family, { type: "counter" | "gauge" }>;
    f.values.set(labelKey(labels), { labels, value });
  }

  /** One observation of a histogram (seconds, bytes…); `buckets` are the upper bounds, ascending. */
  observe(name: string, help: string, value: number, buckets: readonly number[], labels: Labels = {}): void {
    const f = this.#family(name, help, "histogram", buckets) as Extract<Family, { type: "histogram" }>;
    const k = labelKey(labels);
    let s = f.values.get(k);
    if (s === undefined) {
      s = { labels, counts: f.buckets.map(() => 0), sum: 0, count: 0 };
      f.values.set(k, s);
    }
    const i = f.buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** A counter's or gauge's value; a histogram's observation count. */
  get(name: string, labels: Labels = {}): number | undefined {
    const f = this.#families.get(name);
    const s = f?.values.get(labelKey(labels));
    if (s === undefined) return undefined;
    return "count" in s ? s.count : s.value;
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.#families.values()) {
      out.push(`# HELP ${f.name} ${escHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
      if (f.type !== "histogram") {
        for (const { labels, value } of f.values.values()) out.push(`${f.name}${fmtLabels(labels)} ${fmtNum(value)}`);
        continue;
      }
      for (const s of f.values.values()) {
        let cum = 0;
        f.buckets.forEach((b, i) => {
          cum += s.counts[i]!;
          out.push(`${f.name}_bucket${fmtLabels({ ...s.labels, le: String(b) })} ${cum}`);
        });
        out.push(`${f.name}_bucket${fmtLabels({ ...s.labels, le: "+Inf" })} ${s.count}`);
        out.push(`${f.name}_sum${fmtLabels(s.labels)} ${fmtNum(s.sum)}`);
        out.push(`${f.name}_count${fmtLabels(s.labels)} ${s.count}`);
      }
    }
    return `${out.join("\n")}\n`;
  }
}

const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** A cloud client's fetch, its requests counted by method and outcome and timed, under `prefix`. */
export function countedFetch(f: HttpFetch, m: Metrics, prefix: string): HttpFetch {
  const count = (method: string, outcome: string): void =>
    m.inc(`${prefix}_requests_total`, "Cloud API requests by method and outcome", { method, outcome });
  return (req, call) => {
    const t0 = performance.now();
    return f(req, call).then(
      (r) => {
        count(req.method, r.status >= 500 ? "5xx" : r.status >= 400 ? "4xx" : "ok");
        m.observe(
          `${prefix}_request_duration_seconds`,
          "Cloud API request latency",
          (performance.now() - t0) / 1000,
          REQUEST_BUCKETS,
          {
            method: req.method,
          },
        );
        return r;
      },
      (e: unknown) => {
        count(req.method, "network-error");
        throw e;
      },
    );
  };
}
