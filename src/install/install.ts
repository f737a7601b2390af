// `tcnp install --bin-dir DIR`: place the executable and one link per program name, atomically.
// A foreign file of the same name (the reference host-device) is kept beside it as NAME.orig.
import * as fs from "node:fs";
import * as path from "node:path";
import { PROGRAM_NAMES } from "../base/names.js";

export interface InstallResult {
  binary: string;
  links: string[];
  backedUp: string[];
}

export function install(opts: { source: string; binDir: string }): InstallResult {
  const { source, binDir } = opts;
  if (!fs.existsSync(source))
    throw new Error(`Cannot install: executable "${source}" does not exist (run "npm run build")`);
  fs.mkdirSync(binDir, { recursive: true, mode: 0o755 });
  const binary = path.join(binDir, "tcnp");
  const tmp = `${binary}.${process.pid}.tmp`;
  fs.copyFileSync(source, tmp);
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, binary);
  const links: string[] = [];
  const backedUp: string[] = [];
  for (const name of PROGRAM_NAMES) {
    if (name === "tcnp") continue;
    const link = path.join(binDir, name);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(link);
    } catch {
      st = undefined;
    }
    if (st !== undefined && !st.isSymbolicLink() && !fs.existsSync(`${link}.orig`)) {
      fs.renameSync(link, `${link}.orig`);
      backedUp.push(`${link}.orig`);
    }
    const tmpLink = `${link}.${process.pid}.tmp`;
    fs.rmSync(tmpLink, { force: true });
    fs.symlinkSync("tcnp", tmpLink);
    fs.renameSync(tmpLink, link);
    links.push(link);
  }
  return { binary, links, backedUp };
}
