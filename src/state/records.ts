// Small per-attachment records that plugins keep so DEL works when the pod's namespace (and with
// it the kernel state it could have read) is already gone. <stateDir>/<plugin>/<container>__<ifname>.json
import * as fs from "node:fs";
import * as path from "node:path";
import { isObject, type NetConf } from "../cni/netconf.js";
import type { Env } from "../cni/env.js";
import { removeStaleTemps, writeFileAtomic } from "./files.js";

/** The state directory: the plugin's `stateDir`, else its ipam block's, else TCNP_STATE_DIR, else /var/lib/tcnp. */
export function stateDirOf(conf: Pick<NetConf, "raw">, env: Env): string {
  const own = conf.raw["stateDir"];
  if (typeof own === "string") return own;
  const ipam = conf.raw["ipam"];
  if (isObject(ipam) && typeof ipam["stateDir"] === "string") return ipam["stateDir"];
  return env["TCNP_STATE_DIR"] ?? "/var/lib/tcnp";
}

/**
 * The node-wide lock directory: TCNP_LOCK_DIR, else /run/tcnp/locks. It does not follow a
 * configuration's stateDir: two configurations with different state directories still write the
 * same VM port, and one lock must guard it.
 */
export function lockDirOf(env: Env): string {
  const d = env["TCNP_LOCK_DIR"];
  return d !== undefined && d !== "" ? d : "/run/tcnp/locks";
}

export class AttachmentRecords<T> {
  readonly #dir: string;
  readonly #valid: (r: unknown) => r is T;
  /** `valid` tells a record this version understands; others read as absent. */
  constructor(stateDir: string, plugin: string, valid: (r: unknown) => r is T) {
    this.#dir = path.join(stateDir, plugin);
    this.#valid = valid;
  }
  #parse(text: string): T | undefined {
    try {
      const r = JSON.parse(text) as unknown;
      return this.#valid(r) ? r : undefined;
    } catch {
      return undefined;
    }
  }
  /** Where the record of (containerId, ifname) lives. */
  fileOf(containerId: string, ifname: string): string {
    return this.#file(containerId, ifname);
  }
  #file(containerId: string, ifname: string): string {
    return path.join(this.#dir, `${containerId}__${ifname}.json`);
  }
  get(containerId: string, ifname: string): T | undefined {
    try {
      return this.#parse(fs.readFileSync(this.#file(containerId, ifname), "utf8"));
    } catch {
      return undefined;
    }
  }
  // Atomic, not fsynced: the kernel state a record describes does not survive a power loss either.
  put(containerId: string, ifname: string, rec: T): void {
    writeFileAtomic(this.#file(containerId, ifname), JSON.stringify(rec), { durable: false });
  }
  delete(containerId: string, ifname: string): void {
    const f = this.#file(containerId, ifname);
    fs.rmSync(f, { force: true });
    // A writer of this record killed midway left its temporary file: gone with the record.
    try {
      removeStaleTemps(
        this.#dir,
        fs.readdirSync(this.#dir).filter((n) => n.startsWith(`${path.basename(f)}.`)),
      );
    } catch {
      // no directory: nothing left
    }
  }
  list(): T[] {
    try {
      const names = fs.readdirSync(this.#dir);
      removeStaleTemps(this.#dir, names);
      return names
        .filter((n) => n.endsWith(".json"))
        .flatMap((n) => {
          try {
            const r = this.#parse(fs.readFileSync(path.join(this.#dir, n), "utf8"));
            return r === undefined ? [] : [r];
          } catch {
            return [];
          }
        });
    } catch {
      return [];
    }
  }
}
