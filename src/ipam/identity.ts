// Who am I: this VM's Nova server, from the configuration, then the metadata service, then a config
// drive, then the DMI product UUID (case-insensitive), then by matching the host's MACs against
// Neutron ports. Each candidate is confirmed with Nova before it is believed; the answer is cached.
import * as fs from "node:fs";
import * as path from "node:path";
import { CniError, CniCode } from "../cni/errors.js";
import { HOST, type Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import { isOpenStackError } from "../openstack/errors.js";
import type { HttpFetch } from "../openstack/http.js";
import { instanceUuidFromMetadata } from "../openstack/metadata.js";
import type { Neutron } from "../openstack/neutron.js";
import type { Nova } from "../openstack/nova.js";
import type { IpamConfig } from "./config.js";

export type IdentitySource = "config" | "cache" | "metadata" | "config-drive" | "dmi" | "mac";

export interface NodeIdentity {
  serverId: string;
  source: IdentitySource;
}

export interface IdentityDeps {
  cfg: IpamConfig;
  fetch: HttpFetch;
  nova: Nova;
  neutron: Neutron;
  kernel: Kernel;
  log: Logger;
  readFile(file: string): string | undefined;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const cacheFile = (cfg: IpamConfig): string => path.join(cfg.stateDir, "identity.json");

async function exists(d: IdentityDeps, id: string): Promise<boolean> {
  try {
    await d.nova.getServer(id);
    return true;
  } catch (e) {
    if (isOpenStackError(e, undefined, 404)) return false;
    throw e;
  }
}

function fromConfigDrive(d: IdentityDeps): string | undefined {
  for (const dir of d.cfg.configDrivePaths) {
    const text = d.readFile(path.join(dir, "openstack/latest/meta_data.json"));
    if (text === undefined) continue;
    try {
      const uuid = (JSON.parse(text) as { uuid?: unknown }).uuid;
      if (typeof uuid === "string") return uuid.toLowerCase();
    } catch {
      // not a config drive
    }
  }
  return undefined;
}

async function fromMacs(d: IdentityDeps): Promise<string | undefined> {
  const links = (await d.kernel.listLinks(HOST)).filter(
    (l) => l.name !== "lo" && l.mac !== "" && l.mac !== "00:00:00:00:00:00",
  );
  for (const l of links) {
    const ports = await d.neutron.listPorts({ mac_address: l.mac });
    const p = ports.find((x) => x.device_owner.startsWith("compute:") && x.device_id !== "");
    if (p !== undefined) return p.device_id;
  }
  return undefined;
}

export async function resolveIdentity(d: IdentityDeps): Promise<NodeIdentity> {
  if (d.cfg.serverId !== undefined) return { serverId: d.cfg.serverId, source: "config" };
  const cached = d.readFile(cacheFile(d.cfg));
  if (cached !== undefined) {
    try {
      const c = JSON.parse(cached) as { serverId?: unknown };
      if (typeof c.serverId === "string") return { serverId: c.serverId, source: "cache" };
    } catch {
      // rewritten below
    }
  }
  const tries: Array<[IdentitySource, () => Promise<string | undefined>]> = [
    [
      "metadata",
      async () => (d.cfg.metadataUrl === null ? undefined : instanceUuidFromMetadata(d.fetch, d.cfg.metadataUrl, 1500)),
    ],
    ["config-drive", async () => fromConfigDrive(d)],
    ["dmi", async () => d.readFile(d.cfg.dmiUuidPath)?.trim().toLowerCase()],
    ["mac", () => fromMacs(d)],
  ];
  for (const [source, get] of tries) {
    const id = await get();
    if (id === undefined || id === "") continue;
    if (source !== "mac" && !(UUID_RE.test(id) && (await exists(d, id)))) {
      d.log.debug("identity candidate rejected", { source, serverId: id });
      continue;
    }
    remember(d.cfg, id, source);
    return { serverId: id, source };
  }
  throw new CniError(
    CniCode.InvalidConfig,
    "Cannot tell which Nova server this VM is: no ipam.serverId, no metadata service answer, no config drive, no matching DMI UUID, and no host MAC belongs to a Nova port",
  );
}

function remember(cfg: IpamConfig, serverId: string, source: IdentitySource): void {
  try {
    fs.mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
    const tmp = `${cacheFile(cfg)}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ serverId, source }), { mode: 0o600 });
    fs.renameSync(tmp, cacheFile(cfg));
  } catch {
    // a cache that cannot be written only costs a lookup next time
  }
}

/** Drop the cached identity (after Nova said the server does not exist). */
export function forgetIdentity(cfg: IpamConfig): void {
  fs.rmSync(cacheFile(cfg), { force: true });
}
