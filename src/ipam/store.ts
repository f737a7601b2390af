// The local allocation store: one record per (container, interface), written before and after
// every cloud change, so DEL, CHECK and GC need no guesswork and a crash between the cloud write
// and the record leaves an intent that the next DEL or GC resolves. Records are small JSON files
// under <stateDir>/allocations, written atomically and durably; callers hold the node lock.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseCidr } from "../net/ip.js";
import type { Subnet } from "../openstack/types.js";
import { removeStaleTemps, writeFileAtomic } from "../state/files.js";

export type AllocationState = "adding" | "active" | "releasing" | "cooling" | "pool";

/**
 * An address a pod gave back, kept until `coolUntil` (mix: on the VM's port; eni: on the pod's port,
 * kept in Neutron) so that no new pod gets it while other hosts' conntrack may still send the old
 * pod's flows to it. Its own record, keyed by the address, so the container's record is gone (a
 * repeated DEL is a no-op) and a new pod with the same container ID and interface is not in its way.
 */
export const COOLING_IF = "cooling";
/** A warm pool's address (node agent), keyed by the address like a cooling one. */
export const poolKey = (ip: string): { containerId: string; ifname: string } => ({
  containerId: `pool-${ip}`,
  ifname: "pool",
});
export const coolingKey = (ip: string): { containerId: string; ifname: string } => ({
  containerId: `cooldown-${ip}`,
  ifname: COOLING_IF,
});

export interface Allocation {
  containerId: string;
  ifname: string;
  mode: "mix" | "eni";
  state: AllocationState;
  serverId: string;
  networkId: string;
  /** mix: the VM's port; eni: the pod's own port. */
  portId?: string;
  ip?: string;
  prefix?: number;
  gateway?: string;
  subnetId?: string;
  dns?: string[];
  /** eni: the pod port's MAC; mix: the VM port's MAC. */
  mac?: string;
  /** mix: the VM's uplink; eni: the NIC's name in the VM when it appeared. */
  hostIfname?: string;
  /** mix, while adding: the port's addresses before our write (to find what we added after a crash). */
  before?: string[];
  /** The process that wrote an "adding" record: while it lives, the ADD is in progress, not pending. */
  pid?: number;
  /** cooling: when the address may go back to Neutron (ms since the epoch). */
  coolUntil?: number;
  /** cooling: the attachment that held the address ("containerId/ifname"). */
  heldBy?: string;
  /**
   * eni cooling (plugin path, no node agent): the port was detached from the VM at DEL and only
   * holds its address in Neutron; once due it is deleted, never taken into an agent's pool.
   */
  detached?: boolean;
  /** eni pool ports: what the port's tags say now (the agent relabels them off the pods' path). */
  labelled?: "active" | "pool";
  /** Why the last release attempt failed (pending releases). */
  error?: string;
  createdAt: number;
  updatedAt: number;
}

/** What an allocation on `subnet` tells the pod besides its address: prefix, gateway, DNS. */
export function subnetFields(subnet: Subnet): Pick<Allocation, "prefix" | "gateway" | "dns"> {
  return {
    prefix: parseCidr(subnet.cidr).prefix,
    ...(subnet.gateway_ip === null ? {} : { gateway: subnet.gateway_ip }),
    ...(subnet.dns_nameservers.length === 0 ? {} : { dns: subnet.dns_nameservers }),
  };
}

/**
 * Move a pod's allocation of `ip` to a cooling record of its own until `coolUntil`: the cooling
 * record is written first, so the address is never without a record that holds it.
 */
export function coolDown(
  store: AllocationStore,
  a: Allocation,
  ip: string,
  o: { coolUntil: number; now: number; detached?: boolean },
): void {
  store.put({
    ...a,
    ...coolingKey(ip),
    state: "cooling",
    coolUntil: o.coolUntil,
    heldBy: `${a.containerId}/${a.ifname}`,
    ...(o.detached === true ? { detached: true } : {}),
    updatedAt: o.now,
  });
  store.delete(a.containerId, a.ifname);
}

export interface AllocationStore {
  get(containerId: string, ifname: string): Allocation | undefined;
  put(a: Allocation): void;
  delete(containerId: string, ifname: string): void;
  list(): Allocation[];
}

/** Where a state directory keeps the allocation records. */
export const allocationsDir = (stateDir: string): string => path.join(stateDir, "allocations");

const fileName = (containerId: string, ifname: string): string => `${containerId}__${ifname}.json`;

export class FileAllocationStore implements AllocationStore {
  readonly #dir: string;
  constructor(dir: string) {
    this.#dir = dir;
  }
  get(containerId: string, ifname: string): Allocation | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.#dir, fileName(containerId, ifname)), "utf8")) as Allocation;
    } catch {
      return undefined;
    }
  }
  // Only intents are written durably: an "adding" or "releasing" record must survive a power loss
  // to finish its cloud work. An "active" record lost with the power goes back to its intent,
  // and the pod it describes is gone with the power too: DEL or GC releases its address.
  put(a: Allocation): void {
    writeFileAtomic(path.join(this.#dir, fileName(a.containerId, a.ifname)), JSON.stringify(a), {
      durable: a.state !== "active",
    });
  }
  delete(containerId: string, ifname: string): void {
    fs.rmSync(path.join(this.#dir, fileName(containerId, ifname)), { force: true });
  }
  // A consistent listing: a record that vanishes between the directory read and its own read was
  // replaced or removed meanwhile (in the node agent, record changes of a pod's take run beside
  // other readers): read the directory again, so that an address moved from one record to another
  // (written before the old one goes) is never missing from the list.
  list(): Allocation[] {
    for (let attempt = 0; ; attempt++) {
      let names: string[];
      try {
        names = fs.readdirSync(this.#dir);
      } catch {
        return [];
      }
      removeStaleTemps(this.#dir, names);
      const out: Allocation[] = [];
      let vanished = false;
      for (const n of names) {
        if (!n.endsWith(".json")) continue;
        try {
          out.push(JSON.parse(fs.readFileSync(path.join(this.#dir, n), "utf8")) as Allocation);
        } catch (e) {
          // a torn write cannot happen (rename); an unreadable file is skipped, not fatal
          if ((e as NodeJS.ErrnoException).code === "ENOENT") vanished = true;
        }
      }
      if (!vanished || attempt >= 20) return out;
    }
  }
}

export class MemoryAllocationStore implements AllocationStore {
  readonly #m = new Map<string, Allocation>();
  get(c: string, i: string): Allocation | undefined {
    const a = this.#m.get(fileName(c, i));
    return a === undefined ? undefined : { ...a };
  }
  put(a: Allocation): void {
    this.#m.set(fileName(a.containerId, a.ifname), { ...a });
  }
  delete(c: string, i: string): void {
    this.#m.delete(fileName(c, i));
  }
  list(): Allocation[] {
    return [...this.#m.values()].map((a) => ({ ...a }));
  }
}
