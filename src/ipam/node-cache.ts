// Facts about this VM that rarely change, kept between invocations so an ADD does not pay for them:
// which ports are its own (and on which host interface), and the pod subnets of each network.
// Everything read from here is checked before use, and dropped when the cloud disagrees.
import * as fs from "node:fs";
import * as path from "node:path";
import type { Subnet } from "../openstack/types.js";

export interface CachedVmPort {
  portId: string;
  networkId: string;
  mac: string;
  hostIf: string;
  nodeIp: string;
}

interface Shape {
  serverId?: string;
  vmPorts?: CachedVmPort[];
  subnets?: Record<string, { at: number; subnets: Subnet[] }>;
}

export const SUBNET_CACHE_MS = 300_000;

export class NodeCache {
  readonly #file: string;
  #data: Shape | undefined;
  constructor(stateDir: string) {
    this.#file = path.join(stateDir, "node.json");
  }
  #load(): Shape {
    if (this.#data === undefined) {
      try {
        this.#data = JSON.parse(fs.readFileSync(this.#file, "utf8")) as Shape;
      } catch {
        this.#data = {};
      }
    }
    return this.#data;
  }
  #save(): void {
    try {
      fs.mkdirSync(path.dirname(this.#file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(`${this.#file}.${process.pid}.tmp`, JSON.stringify(this.#data), { mode: 0o600 });
      fs.renameSync(`${this.#file}.${process.pid}.tmp`, this.#file);
    } catch {
      // a cache that cannot be written only costs lookups next time
    }
  }
  vmPorts(serverId: string): CachedVmPort[] | undefined {
    const d = this.#load();
    return d.serverId === serverId ? d.vmPorts : undefined;
  }
  setVmPorts(serverId: string, ports: CachedVmPort[] | undefined): void {
    const d = this.#load();
    if (ports === undefined) delete d.vmPorts;
    else {
      d.serverId = serverId;
      d.vmPorts = ports;
    }
    this.#save();
  }
  subnets(networkId: string, now: number): Subnet[] | undefined {
    const e = this.#load().subnets?.[networkId];
    return e !== undefined && now - e.at < SUBNET_CACHE_MS ? e.subnets : undefined;
  }
  setSubnets(networkId: string, subnets: Subnet[] | undefined, now: number): void {
    const d = this.#load();
    d.subnets ??= {};
    if (subnets === undefined) delete d.subnets[networkId];
    else d.subnets[networkId] = { at: now, subnets };
    this.#save();
  }
}
