// `tcnp gc`: release what tcnp holds for pods that are gone, on a node whose runtime does not send
// CNI GC (containerd before 2.0, CRI-O before 1.30). The runtime's CNI result cache says which
// attachments exist; every tcnp network configuration is then garbage-collected as the runtime
// would do it (CNI 1.1 GC with cni.dev/valid-attachments, each plugin of the chain in order).
// Allocations younger than --min-age count as valid: a pod being created right now has its
// addresses before the runtime caches its result.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { isObject, type Json } from "../cni/netconf.js";
import { readLedger } from "../ipam/ledger-files.js";
import { belongsTo, keyOf, ownerText, type Owner, type Rec } from "../ipam/ledger/records.js";
import { stateDirOf } from "../state/records.js";
import { GC_MIN_AGE_KEY } from "../cni/netconf.js";
import type { Io } from "../base/io.js";
import { ATTACHMENT_PLUGINS } from "../base/names.js";

export const GC_USAGE = `usage: tcnp gc [--conf-dir DIR] [--cache-dir DIR] [--state-dir DIR] [--min-age SECONDS] [--dry-run] [--json]
  Release the Neutron addresses, ports and host links of pods that are gone, for runtimes that do not
  send CNI GC. Valid attachments are those in the runtime's CNI cache (--cache-dir, default
  CNI_CACHEDIR or /var/lib/cni), for each tcnp configuration in --conf-dir (default NETCONFPATH or
  /etc/cni/net.d). Allocations younger than --min-age (default 300) are kept. --state-dir stands in
  for TCNP_STATE_DIR (a configuration's own stateDir wins, as in the plugins). Run it on the node.
  --json prints one object per network: valid, toRelease, released (with --dry-run: none), cooling,
  pooled, failures.
`;

interface Network {
  file: string;
  name: string;
  plugins: Json[];
  stateDir: string;
  mode: "mix" | "eni";
  networks: string[];
}

function readNetworks(confDir: string, env: Io["env"]): Network[] {
  const out: Network[] = [];
  let files: string[] = [];
  try {
    files = fs
      .readdirSync(confDir)
      .filter((f) => /\.(conf|conflist|json)$/.test(f))
      .sort();
  } catch {
    return out;
  }
  for (const f of files) {
    let c: unknown;
    try {
      c = JSON.parse(fs.readFileSync(path.join(confDir, f), "utf8"));
    } catch {
      continue;
    }
    if (!isObject(c) || typeof c["name"] !== "string") continue;
    const plugins = (Array.isArray(c["plugins"]) ? c["plugins"] : [c]).filter(isObject);
    const ipam = plugins.map((p) => p["ipam"]).find((i) => isObject(i) && i["type"] === "tcnp-ipam") as
      Json | undefined;
    if (ipam === undefined && !plugins.some((p) => p["type"] === "veth-host")) continue;
    const nc = isObject(ipam?.["neutronConf"]) ? ipam["neutronConf"] : {};
    const networks = Array.isArray(nc["networks"]) ? nc["networks"].map(String) : [];
    const mode = nc["mode"] === "eni" ? "eni" : "mix";
    // Where tcnp-ipam keeps its records: its own stateDir, else TCNP_STATE_DIR, else the default.
    const stateDir = stateDirOf({ raw: ipam ?? {} }, env);
    out.push({ file: path.join(confDir, f), name: c["name"], plugins, stateDir, mode, networks });
  }
  return out;
}

/**
 * The attachments the runtime knows, per network name (libcni's results cache). An entry that
 * cannot be read might be a live pod's: it is reported, and nothing is released while one exists.
 */
function cachedAttachments(dir: string): {
  byNetwork: Map<string, Array<{ containerID: string; ifname: string }>>;
  unreadable: string[];
} {
  const byNetwork = new Map<string, Array<{ containerID: string; ifname: string }>>();
  const unreadable: string[] = [];
  for (const f of fs.readdirSync(dir)) {
    try {
      const c = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as Json;
      if (
        typeof c["networkName"] !== "string" ||
        typeof c["containerId"] !== "string" ||
        typeof c["ifName"] !== "string"
      )
        throw new Error("not a CNI cache entry");
      const list = byNetwork.get(c["networkName"]) ?? [];
      list.push({ containerID: c["containerId"], ifname: c["ifName"] });
      byNetwork.set(c["networkName"], list);
    } catch {
      unreadable.push(path.join(dir, f));
    }
  }
  return { byNetwork, unreadable };
}

export function gcCli(argv: string[], io: Io, self: string): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      "conf-dir": { type: "string" },
      "cache-dir": { type: "string" },
      "state-dir": { type: "string" },
      "min-age": { type: "string" },
      "dry-run": { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help === true) {
    io.out(GC_USAGE);
    return 0;
  }
  const minAge = Number(values["min-age"] ?? "300");
  if (!Number.isFinite(minAge) || minAge < 0) {
    io.err(`--min-age must be a number of seconds ≥ 0\n${GC_USAGE}`);
    return 2;
  }
  const confDir = values["conf-dir"] ?? io.env["NETCONFPATH"] ?? "/etc/cni/net.d";
  const cacheDir = values["cache-dir"] ?? io.env["CNI_CACHEDIR"] ?? "/var/lib/cni";
  const env = values["state-dir"] === undefined ? io.env : { ...io.env, TCNP_STATE_DIR: values["state-dir"] };
  const networks = readNetworks(confDir, env);
  if (networks.length === 0) {
    io.err(`tcnp gc: no tcnp network configuration in ${confDir}\n`);
    return 2;
  }
  // Without the runtime's cache every pod would look gone: a wrong --cache-dir must not release them.
  const resultsDir = path.join(cacheDir, "results");
  if (!fs.existsSync(resultsDir)) {
    io.err(`tcnp gc: no CNI result cache at ${resultsDir} (is --cache-dir the runtime's?); nothing released\n`);
    return 2;
  }
  const { byNetwork: cached, unreadable } = cachedAttachments(resultsDir);
  if (unreadable.length > 0) {
    io.err(
      `tcnp gc: cannot read ${unreadable.length} CNI cache entr${unreadable.length === 1 ? "y" : "ies"} (${unreadable.join(", ")}); they may be live pods, so nothing is released\n`,
    );
    return 1;
  }
  let failed = 0;
  const json = values.json === true;
  const out = json ? (): void => {} : io.out;
  const report: Json[] = [];
  for (const n of networks) {
    const mine = (): Rec[] => readLedger(n.stateDir).filter(belongsTo(n.mode, n.networks));
    const before = mine();
    const now = Date.now();
    // The runtime's attachments, and pods younger than --min-age (each counted once).
    const valid = new Map((cached.get(n.name) ?? []).map((v) => [`${v.containerID}/${v.ifname}`, v]));
    for (const r of before)
      if (r.kind === "pod" && now - r.createdAt < minAge * 1000)
        valid.set(ownerText(r.owner), { containerID: r.owner.containerId, ifname: r.owner.ifname });
    const stale = before.filter(
      (r) => (r.kind === "pod" && !valid.has(ownerText(r.owner))) || (r.kind === "intent" && r.op !== "fill"),
    );
    const cooling = before.filter((r) => r.kind === "cooling").length;
    const pooled = before.filter((r) => r.kind === "pool").length;
    const what = (r: Rec): string =>
      `${r.kind === "pod" || (r.kind === "intent" && r.owner !== undefined) ? ownerText((r as { owner: Owner }).owner) : (r.ip ?? "")} ${r.mode} ${r.ip ?? "(no address)"} ${r.kind === "intent" ? `pending ${r.op}` : "in use"}${r.portId === undefined ? "" : ` port ${r.portId}`}`;
    const failures: string[] = [];
    out(
      `network ${n.name} (${n.file}): ${valid.size} valid attachment(s), ${stale.length} allocation(s) to release${stale.map((r) => `\n  ${what(r)}`).join("")}${cooling === 0 ? "" : `\n  ${cooling} address(es) cooling down (ipam.coolDownSeconds: on the VM's port, on an eni port kept detached, or in the node agent's pool), left alone`}${pooled === 0 ? "" : `\n  ${pooled} free address(es) in the node agent's pool, left alone`}\n`,
    );
    const entry = (released: Rec[]): Json => ({
      network: n.name,
      file: n.file,
      mode: n.mode,
      valid: [...valid.keys()],
      toRelease: stale.map(what),
      released: released.map(what),
      cooling,
      pooled,
      failures,
    });
    if (values["dry-run"] === true) {
      report.push(entry([]));
      continue;
    }
    for (const p of n.plugins) {
      const type = String(p["type"]);
      if (!ATTACHMENT_PLUGINS.has(type)) continue;
      // The age check is repeated inside each plugin's GC, per attachment and under the node lock: a
      // pod whose ADD lands after the valid set was read is younger than --min-age there.
      const stdin = JSON.stringify({
        ...p,
        cniVersion: "1.1.0",
        name: n.name,
        "cni.dev/valid-attachments": [...valid.values()],
        [GC_MIN_AGE_KEY]: minAge,
      });
      const r = spawnSync(self, [], {
        argv0: type,
        input: stdin,
        encoding: "utf8",
        env: { ...env, CNI_COMMAND: "GC", CNI_PATH: path.dirname(self) },
        timeout: 600_000,
      });
      if (r.status !== 0) {
        failed++;
        const msg = (() => {
          try {
            return String((JSON.parse(r.stdout) as Json)["msg"]);
          } catch {
            return (r.stderr || r.stdout || `exit ${r.status ?? r.signal}`).trim();
          }
        })();
        failures.push(`${type} GC failed: ${msg}`);
        io.err(`  ${type} GC failed: ${msg}\n`);
      }
    }
    const left = new Set(mine().map(keyOf));
    const released = stale.filter((r) => !left.has(keyOf(r)));
    out(`  released ${released.length} of ${stale.length}${released.map((r) => `\n  ✓ ${what(r)}`).join("")}\n`);
    report.push(entry(released));
  }
  if (json) io.out(`${JSON.stringify(report, null, 2)}\n`);
  return failed === 0 ? 0 : 1;
}
