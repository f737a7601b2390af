// A small Prometheus registry: counters and gauges with labels, rendered in the text format.
type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge";
  values: Map<string, { labels: Labels; value: number }>;
}

const labelKey = (l: Labels): string =>
  Object.keys(l)
    .sort()
    .map((k) => `${k}=${l[k]}`)
    .join(",");
const esc = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

export class Metrics {
  readonly #families = new Map<string, Family>();

  #family(name: string, help: string, type: Family["type"]): Family {
    let f = this.#families.get(name);
    if (f === undefined) {
      f = { name, help, type, values: new Map() };
      this.#families.set(name, f);
    }
    return f;
  }

  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const f = this.#family(name, help, "counter");
    const k = labelKey(labels);
    const cur = f.values.get(k);
    f.values.set(k, { labels, value: (cur?.value ?? 0) + by });
  }

  set(name: string, help: string, value: number, labels: Labels = {}): void {
    this.#family(name, help, "gauge").values.set(labelKey(labels), { labels, value });
  }

  /** A histogram: cumulative buckets, sum and count (rendered as counters of the _bucket/_sum/_count series). */
  observe(name: string, help: string, value: number, buckets: readonly number[], labels: Labels = {}): void {
    for (const le of [...buckets.map(String), "+Inf"])
      if (le === "+Inf" || value <= Number(le)) this.inc(`${name}_bucket`, help, { ...labels, le });
      else this.inc(`${name}_bucket`, help, { ...labels, le }, 0);
    this.inc(`${name}_sum`, help, labels, value);
    this.inc(`${name}_count`, help, labels);
  }

  get(name: string, labels: Labels = {}): number | undefined {
    return this.#families.get(name)?.values.get(labelKey(labels))?.value;
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.#families.values()) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
      for (const { labels, value } of f.values.values()) {
        const l =
          Object.keys(labels).length === 0
            ? ""
            : `{${Object.entries(labels)
                .map(([k, v]) => `${k}="${esc(v)}"`)
                .join(",")}}`;
        out.push(`${f.name}${l} ${value}`);
      }
    }
    return `${out.join("\n")}\n`;
  }
}
