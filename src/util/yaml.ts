// The YAML that clouds.yaml files use: nested block mappings, block sequences of scalars or
// mappings, plain/quoted scalars, comments. Flow collections, anchors and multi-documents are
// refused with a clear error instead of being misread.

export type Yaml = string | number | boolean | null | Yaml[] | { [k: string]: Yaml };

interface Line {
  indent: number;
  text: string;
  n: number;
}

function scalar(raw: string, n: number): Yaml {
  const s = raw.trim();
  if (s === "" || s === "~" || s === "null") return null;
  if (s.startsWith('"')) {
    if (!s.endsWith('"') || s.length < 2) throw new SyntaxError(`YAML line ${n}: unterminated string`);
    return JSON.parse(s) as string;
  }
  if (s.startsWith("'")) {
    if (!s.endsWith("'") || s.length < 2) throw new SyntaxError(`YAML line ${n}: unterminated string`);
    return s.slice(1, -1).replace(/''/g, "'");
  }
  if (/^[[{&*!|>]/.test(s))
    throw new SyntaxError(`YAML line ${n}: flow collections, anchors, tags and block scalars are not supported`);
  if (s === "true" || s === "True") return true;
  if (s === "false" || s === "False") return false;
  if (/^-?\d+$/.test(s)) return Number(s);
  return s;
}

function stripComment(s: string): string {
  let q: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (q !== undefined) {
      if (ch === q) q = undefined;
    } else if (ch === '"' || ch === "'") q = ch;
    else if (ch === "#" && (i === 0 || /\s/.test(s[i - 1]!))) return s.slice(0, i);
  }
  return s;
}

function keyValue(text: string, n: number): [string, string] {
  const m = /^("[^"]*"|'[^']*'|[^:]+?)\s*:(?:\s+(.*))?$/.exec(text);
  if (m === null) throw new SyntaxError(`YAML line ${n}: expected "key: value"`);
  return [String(scalar(m[1]!, n)), m[2] ?? ""];
}

function block(lines: Line[], start: number, indent: number): [Yaml, number] {
  const first = lines[start];
  if (first === undefined || first.indent < indent) return [null, start];
  if (first.text.startsWith("- ") || first.text === "-") {
    const out: Yaml[] = [];
    let i = start;
    while (
      i < lines.length &&
      lines[i]!.indent === first.indent &&
      (lines[i]!.text.startsWith("- ") || lines[i]!.text === "-")
    ) {
      const rest = lines[i]!.text.slice(1).trim();
      if (rest === "") {
        const [v, next] = block(lines, i + 1, first.indent + 1);
        out.push(v);
        i = next;
      } else if (/^[^"'][^:]*:(\s|$)|^["'][^"']*["']\s*:(\s|$)/.test(rest)) {
        // "- key: value" starts a mapping whose other keys sit at the dash's indent + 2
        const virt: Line[] = [{ indent: first.indent + 2, text: rest, n: lines[i]!.n }];
        let j = i + 1;
        while (j < lines.length && lines[j]!.indent > first.indent) virt.push(lines[j++]!);
        out.push(block(virt, 0, first.indent + 2)[0]);
        i = j;
      } else {
        out.push(scalar(rest, lines[i]!.n));
        i++;
      }
    }
    return [out, i];
  }
  const out: { [k: string]: Yaml } = {};
  let i = start;
  while (i < lines.length && lines[i]!.indent === first.indent) {
    const l = lines[i]!;
    if (l.text.startsWith("- ")) throw new SyntaxError(`YAML line ${l.n}: a list item where a key was expected`);
    const [k, v] = keyValue(l.text, l.n);
    if (v.trim() === "") {
      const [child, next] = block(lines, i + 1, first.indent + 1);
      out[k] = child;
      i = next;
    } else {
      out[k] = scalar(v, l.n);
      i++;
    }
  }
  if (i < lines.length && lines[i]!.indent > first.indent)
    throw new SyntaxError(`YAML line ${lines[i]!.n}: unexpected indentation`);
  return [out, i];
}

export function parseYaml(text: string): Yaml {
  const lines: Line[] = [];
  text.split(/\r?\n/).forEach((raw, idx) => {
    if (/^\s*---\s*$/.test(raw) && lines.length === 0) return;
    if (raw.includes("\t")) throw new SyntaxError(`YAML line ${idx + 1}: tabs are not allowed for indentation`);
    const t = stripComment(raw).replace(/\s+$/, "");
    if (t.trim() === "") return;
    lines.push({ indent: t.length - t.trimStart().length, text: t.trim(), n: idx + 1 });
  });
  if (lines.length === 0) return null;
  const [v, end] = block(lines, 0, 0);
  if (end < lines.length) throw new SyntaxError(`YAML line ${lines[end]!.n}: unexpected content`);
  return v;
}
