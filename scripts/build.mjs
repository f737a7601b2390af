#!/usr/bin/env node
// Build everything:  node scripts/build.mjs [--tests-only] [--no-sea]
//   build/native/   the native addons (tcnp.node compiled here, netlink.node from its prebuild)
//   build/          src/, test/ and bench/ transpiled to ESM for node:test
//   dist/tcnp.cjs   one esbuild bundle of src/bin/main.ts (+ dist/native/ for running it with node)
//   dist/tcnp       the single executable application (Node SEA, code cache, addons as assets)
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = new Set(process.argv.slice(2));
const rel = (p) => path.join(root, p);
const t0 = Date.now();
const say = (m) => process.stderr.write(`[build ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);

function newer(src, dst) {
  try {
    return fs.statSync(src).mtimeMs > fs.statSync(dst).mtimeMs;
  } catch {
    return true;
  }
}

function buildNative() {
  fs.mkdirSync(rel("build/native"), { recursive: true });
  const src = rel("native/tcnp_native.c");
  const out = rel("build/native/tcnp.node");
  if (newer(src, out)) {
    execFileSync("gcc", ["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-I/usr/include/node", "-o", out, src], {
      stdio: "inherit",
    });
    say("compiled native/tcnp_native.c");
  }
  const nl = rel("node_modules/netlink/prebuilds/linux-x64/node.napi.node");
  fs.copyFileSync(nl, rel("build/native/netlink.node"));
}

function listTs(dir) {
  const out = [];
  if (!fs.existsSync(rel(dir))) return out;
  for (const e of fs.readdirSync(rel(dir), { withFileTypes: true, recursive: true })) {
    const full = path.join(e.parentPath ?? e.path, e.name);
    if (e.isFile() && full.endsWith(".ts") && !full.endsWith(".d.ts")) out.push(full);
  }
  return out;
}

async function transpile() {
  const entryPoints = [...listTs("src"), ...listTs("test"), ...listTs("bench")];
  await esbuild.build({
    entryPoints,
    outdir: rel("build"),
    outbase: root,
    bundle: false,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: "inline",
    logLevel: "warning",
  });
  say(`transpiled ${entryPoints.length} files to build/`);
}

// netlink's binding is found by node-gyp-build relative to its package; in the bundle it comes from
// our loader instead (an SEA asset, or dist/native/netlink.node).
const netlinkBindingPlugin = {
  name: "netlink-binding",
  setup(b) {
    b.onLoad({ filter: /netlink[\\/]dist[\\/]raw\.js$/ }, async (a) => {
      const text = await fs.promises.readFile(a.path, "utf8");
      const needle = "require('node-gyp-build')(__dirname + '/..')";
      if (!text.includes(needle)) throw new Error("netlink/dist/raw.js changed: cannot rewrite its binding load");
      const loader = JSON.stringify(rel("src/native/load.ts"));
      return {
        contents: text.replace(needle, `require(${loader}).loadNative("netlink")`),
        loader: "js",
        resolveDir: path.dirname(a.path),
      };
    });
  },
};

function version() {
  const pkg = JSON.parse(fs.readFileSync(rel("package.json"), "utf8")).version;
  try {
    const rev = execFileSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    return `${pkg}+${rev}`;
  } catch {
    return pkg;
  }
}

async function bundle() {
  fs.mkdirSync(rel("dist/native"), { recursive: true });
  await esbuild.build({
    entryPoints: [rel("src/bin/main.ts")],
    outfile: rel("dist/tcnp.cjs"),
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20",
    minifySyntax: true,
    minifyWhitespace: true,
    keepNames: true,
    legalComments: "none",
    define: { "import.meta.url": "__tcnp_import_meta_url", __TCNP_VERSION__: JSON.stringify(version()) },
    banner: { js: "var __tcnp_import_meta_url = require('url').pathToFileURL(__filename).href;" },
    plugins: [netlinkBindingPlugin],
    logLevel: "warning",
  });
  for (const n of ["tcnp", "netlink"]) fs.copyFileSync(rel(`build/native/${n}.node`), rel(`dist/native/${n}.node`));
  say(`bundled dist/tcnp.cjs (${(fs.statSync(rel("dist/tcnp.cjs")).size / 1024).toFixed(0)} KiB)`);
}

function sea() {
  const cfg = {
    main: rel("dist/tcnp.cjs"),
    output: rel("build/sea.blob"),
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    assets: { "tcnp.node": rel("build/native/tcnp.node"), "netlink.node": rel("build/native/netlink.node") },
  };
  fs.writeFileSync(rel("build/sea-config.json"), JSON.stringify(cfg, null, 2));
  execFileSync(process.execPath, ["--experimental-sea-config", rel("build/sea-config.json")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const tmp = rel("dist/tcnp.tmp");
  fs.copyFileSync(process.execPath, tmp);
  // Strip before injecting: stripping an injected binary corrupts it (research/toolchain.md §3).
  execFileSync("strip", ["--strip-all", tmp], { stdio: ["ignore", "ignore", "ignore"] });
  execFileSync(
    process.execPath,
    [
      rel("node_modules/postject/dist/cli.js"),
      tmp,
      "NODE_SEA_BLOB",
      cfg.output,
      "--sentinel-fuse",
      "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  fs.chmodSync(tmp, 0o755);
  fs.renameSync(tmp, rel("dist/tcnp"));
  say(`wrote dist/tcnp (${(fs.statSync(rel("dist/tcnp")).size / 1e6).toFixed(1)} MB)`);
}

// dist/tcnp-cni: the small Go forwarder the runtime runs for each plugin name (forwarder/main.go),
// built with Debian's golang-go, offline (standard library only). Without Go it is left out and
// the plugin names run the Node executable directly.
function forwarder() {
  const out = rel("dist/tcnp-cni");
  const src = rel("forwarder/main.go");
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs > fs.statSync(src).mtimeMs) return;
  try {
    execFileSync("go", ["build", "-trimpath", "-ldflags=-s -w", "-o", out, "."], {
      cwd: rel("forwarder"),
      env: { ...process.env, GOFLAGS: "-mod=mod", GOPROXY: "off", GOCACHE: rel("build/gocache"), CGO_ENABLED: "0" },
      stdio: ["ignore", "inherit", "inherit"],
    });
    say(`wrote dist/tcnp-cni (${(fs.statSync(out).size / 1e6).toFixed(1)} MB, the forwarder)`);
  } catch (e) {
    say(`no forwarder: cannot run go (${e.message.split("\n")[0]}); plugin names will run dist/tcnp`);
  }
}

buildNative();
await transpile();
if (!args.has("--tests-only")) {
  await bundle();
  if (!args.has("--no-sea")) sea();
  forwarder();
}
