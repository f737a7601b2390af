// `tcnp cloud`: serve the embedded OpenStack, and steer a running one (faults, settings, tokens).
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { kernelDataPath } from "../cloud/datapath.js";
import { Emulator, type EmulatorConfig, type FaultRule } from "../cloud/emulator.js";
import { serve } from "../cloud/serve.js";
import { applySeed, readSeedFile, type Seed } from "../cloud/seed.js";
import type { World } from "../cloud/world.js";
import type { Kernel } from "../kernel/types.js";
import { fileSink } from "../log/file-sink.js";
import { createLogger, type Logger } from "../log/logger.js";
import { nodeFetch } from "../openstack/node-fetch.js";
import type { Io } from "../base/io.js";

export const CLOUD_USAGE = `usage:
  tcnp cloud --listen ADDR [--listen ADDR ...] [--seed FILE] [--state FILE] [--public-url URL] [--pid-file FILE] [--log-file FILE]
      ADDR is HOST:PORT or unix:PATH. Without a seed: user "admin", password "secret", project "admin",
      domain "Default"; Keystone at http://ADDR/v3. With --state, the world persists there and is
      reloaded on the next start.
  tcnp cloud fault add --url URL --kind KIND [--service S] [--method M] [--path REGEX] [--status N]
                       [--type ERRORTYPE] [--message TEXT] [--latency MS] [--count N] [--probability P]
      KIND: latency | error | drop | drop-after-commit | stale-revision | no-nic
  tcnp cloud fault list|clear --url URL
  tcnp cloud config --url URL [KEY=VALUE ...]     e.g. routeLimit=30 routeLimitMode=OverQuota extraRouteAtomic=false
  tcnp cloud expire-tokens --url URL
`;

/** "unix:/path" → the http+unix form nodeFetch understands. */
export const adminBase = (url: string): string =>
  url.startsWith("unix:") ? `http+unix://${encodeURIComponent(url.slice(5))}` : url.replace(/\/+$/, "");

async function admin(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: string }> {
  const res = await nodeFetch({ timeoutMs: 30_000 })({
    method,
    url: `${adminBase(url)}/_tcnp${path}`,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status >= 300) throw new Error(`${method} /_tcnp${path}: ${res.status} ${res.body}`);
  return res;
}

function coerce(v: string): unknown {
  if (v === "true" || v === "false") return v === "true";
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  return v;
}

async function control(sub: string | undefined, rest: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      url: { type: "string" },
      kind: { type: "string" },
      service: { type: "string" },
      method: { type: "string" },
      path: { type: "string" },
      status: { type: "string" },
      type: { type: "string" },
      message: { type: "string" },
      latency: { type: "string" },
      count: { type: "string" },
      probability: { type: "string" },
    },
  });
  const url = values.url ?? io.env["TCNP_CLOUD_URL"];
  if (url === undefined) {
    io.err("tcnp cloud: --url is required (or TCNP_CLOUD_URL)\n");
    return 2;
  }
  if (sub === "fault") {
    const action = positionals[0];
    if (action === "list") io.out(`${(await admin(url, "GET", "/faults")).body}\n`);
    else if (action === "clear") await admin(url, "DELETE", "/faults");
    else if (action === "add") {
      if (values.kind === undefined) throw new Error("fault add needs --kind");
      const f: FaultRule = { kind: values.kind as FaultRule["kind"] };
      if (values.service !== undefined) f.service = values.service as NonNullable<FaultRule["service"]>;
      if (values.method !== undefined) f.method = values.method.toUpperCase();
      if (values.path !== undefined) f.path = values.path;
      if (values.status !== undefined) f.status = Number(values.status);
      if (values.type !== undefined) f.errorType = values.type;
      if (values.message !== undefined) f.message = values.message;
      if (values.latency !== undefined) f.latencyMs = Number(values.latency);
      if (values.count !== undefined) f.remaining = Number(values.count);
      if (values.probability !== undefined) f.probability = Number(values.probability);
      io.out(`${(await admin(url, "POST", "/faults", f)).body}\n`);
    } else {
      io.err(CLOUD_USAGE);
      return 2;
    }
    return 0;
  }
  if (sub === "config") {
    const patch: Record<string, unknown> = {};
    for (const kv of positionals) {
      const eq = kv.indexOf("=");
      if (eq <= 0) throw new Error(`expected KEY=VALUE, got "${kv}"`);
      patch[kv.slice(0, eq)] = coerce(kv.slice(eq + 1));
    }
    io.out(
      `${(Object.keys(patch).length === 0 ? await admin(url, "GET", "/config") : await admin(url, "PATCH", "/config", patch)).body}\n`,
    );
    return 0;
  }
  if (sub === "expire-tokens") {
    await admin(url, "POST", "/tokens/expire");
    return 0;
  }
  io.err(CLOUD_USAGE);
  return 2;
}

export interface ServeHandle {
  emulator: Emulator;
  addresses: string[];
  stop(): Promise<void>;
}

/** Start serving; returns when listening. `kernel` is needed only for a seed with a data-path map. */
export async function startCloud(opts: {
  listen: string[];
  seed?: Seed;
  stateFile?: string;
  publicUrl?: string;
  log: Logger;
  kernel?: () => Promise<Kernel>;
}): Promise<ServeHandle> {
  let world: World | undefined;
  let config: Partial<EmulatorConfig> = {};
  if (opts.stateFile !== undefined && fs.existsSync(opts.stateFile)) {
    const saved = JSON.parse(fs.readFileSync(opts.stateFile, "utf8")) as { world: World; config: EmulatorConfig };
    world = saved.world;
    config = saved.config;
  }
  if (opts.publicUrl !== undefined) config.publicUrl = opts.publicUrl;
  const em = new Emulator({
    config,
    ...(world === undefined ? {} : { world }),
    ...(opts.stateFile === undefined ? {} : { stateFile: opts.stateFile }),
  });
  if (world === undefined) applySeed(em, opts.seed ?? {});
  const dp = opts.seed?.datapath;
  if (dp !== undefined && opts.kernel !== undefined) em.hooks = kernelDataPath(em, await opts.kernel(), dp, opts.log);
  em.persist();
  const served = await serve(em, opts.listen);
  opts.log.info("cloud listening", { addresses: served.addresses });
  return {
    emulator: em,
    addresses: served.addresses,
    stop: async () => {
      await served.close();
      await em.settle();
      em.persist();
    },
  };
}

export async function cloudCli(
  argv: string[],
  io: Io,
  deps: { kernel: () => Promise<Kernel>; onStop: (stop: () => Promise<void>) => void },
): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "fault" || sub === "config" || sub === "expire-tokens") return control(sub, rest, io);
  if (sub === "help" || sub === "--help") {
    io.out(CLOUD_USAGE);
    return 0;
  }
  const args = sub === "serve" ? rest : argv;
  const { values } = parseArgs({
    args,
    options: {
      listen: { type: "string", multiple: true },
      seed: { type: "string" },
      state: { type: "string" },
      "public-url": { type: "string" },
      "pid-file": { type: "string" },
      "log-file": { type: "string" },
    },
  });
  const listen = values.listen ?? [];
  if (listen.length === 0) {
    io.err(`tcnp cloud: --listen is required\n${CLOUD_USAGE}`);
    return 2;
  }
  const log = createLogger(
    values["log-file"] === undefined ? { write: (l) => io.err(l) } : fileSink(values["log-file"]),
  ).child({ program: "tcnp cloud" });
  const h = await startCloud({
    listen,
    log,
    kernel: deps.kernel,
    ...(values.seed === undefined ? {} : { seed: readSeedFile(values.seed) }),
    ...(values.state === undefined ? {} : { stateFile: values.state }),
    ...(values["public-url"] === undefined ? {} : { publicUrl: values["public-url"] }),
  });
  if (values["pid-file"] !== undefined) fs.writeFileSync(values["pid-file"], `${process.pid}\n`);
  for (const a of h.addresses)
    io.out(
      `tcnp cloud listening on ${a.startsWith("unix:") ? a : `http://${a}`} (Keystone ${a.startsWith("unix:") ? a : `http://${a}`}/v3)\n`,
    );
  deps.onStop(h.stop);
  return -1;
}
