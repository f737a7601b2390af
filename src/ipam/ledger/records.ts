// The records of the address ledger: every address a node holds for pods is one record of one
// kind. The kinds are a discriminated union (`kind`), never told apart by a key's spelling; each
// record's key follows from its kind, so two records never claim one key.
//
//   pod      a pod attachment's address (the pod runs with it)
//   pool     a free address of the node agent's warm pool
//   cooling  an address a pod gave back, kept from new pods until `coolUntil`
//   intent   cloud work begun or left pending: written durably before the cloud write it stands
//            for, so a crash at any moment leaves a record that says what to finish or undo
export type Mode = "mix" | "eni";

/** Where an address lives and what a pod needs to use it. */
export interface Address {
  mode: Mode;
  serverId: string;
  networkId: string;
  /** mix: the VM's port; eni: the address's own port. */
  portId?: string;
  ip?: string;
  subnetId?: string;
  prefix?: number;
  gateway?: string;
  dns?: string[];
  /** mix: the VM port's MAC; eni: the address's own port's MAC. */
  mac?: string;
  /** mix: the VM's uplink; eni: the NIC's name in the VM when it appeared. */
  hostIfname?: string;
}

/** A pod attachment: the runtime's (container ID, interface name). */
export interface Owner {
  containerId: string;
  ifname: string;
}

interface Stamped {
  createdAt: number;
  updatedAt: number;
}

/** A held address: its port and address are known. */
type Held = Address & Stamped & { ip: string; portId: string };

export interface PodRecord extends Held {
  kind: "pod";
  owner: Owner;
  /** eni: the port's tags name the pod (the agent relabels a pool port off the pod's path). */
  labelled?: boolean;
}

export interface PoolRecord extends Held {
  kind: "pool";
  /** eni: the port's tags name the pool. */
  labelled?: boolean;
}

export interface CoolingRecord extends Held {
  kind: "cooling";
  /** When it may serve again or go back to Neutron (ms since the epoch). */
  coolUntil: number;
  /** The attachment that held it ("containerId/ifname"). */
  heldBy: string;
  /** eni without the agent: the port was detached at DEL; once due it is deleted, never pooled. */
  detached?: boolean;
}

/**
 * add      a pod's address being made (mix: one more fixed IP; eni: the pod's own port)
 * fill     a batch of pool addresses being added to the VM's port (mix)
 * grow     a pool port being tagged and attached (eni)
 * release  an address going back to the cloud (a pod's, a due cooling one, a pool surplus), or a
 *          pod's port to be looked for by its owner (no port known)
 */
export type IntentOp = "add" | "fill" | "grow" | "release";

export interface IntentRecord extends Address, Stamped {
  kind: "intent";
  op: IntentOp;
  /** add, and the release of a pod's address: whose. */
  owner?: Owner;
  /** mix add and fill: the port's addresses before the write (what appears beyond them is ours). */
  before?: string[];
  /** eni release whose detach failed: the cool-down still applies once the port is detached. */
  coolUntil?: number;
  /** Why the last attempt failed. */
  error?: string;
}

export type Rec = PodRecord | PoolRecord | CoolingRecord | IntentRecord;

/** The key of a pod attachment's records (its pod record, its add or release intent). */
export const ownerKey = (o: Owner): string => `pod/${o.containerId}/${o.ifname}`;
/** The key of an address's own records (pool, cooling, their release, an eni pool port's growth). */
export const addressKey = (ip: string): string => `ip/${ip}`;
/** The key of a mix pool's batch on a port. */
export const fillKey = (portId: string): string => `fill/${portId}`;

export function keyOf(r: Rec): string {
  switch (r.kind) {
    case "pod":
      return ownerKey(r.owner);
    case "pool":
    case "cooling":
      return addressKey(r.ip);
    case "intent":
      if (r.owner !== undefined) return ownerKey(r.owner);
      if (r.op === "fill") return fillKey(r.portId ?? "");
      return addressKey(r.ip ?? "");
  }
}

export const ownerText = (o: Owner): string => `${o.containerId}/${o.ifname}`;

/** Records that hold their address on its port for someone: a pod, the pool, a cool-down. */
export const holds = (r: Rec): r is PodRecord | PoolRecord | CoolingRecord => r.kind !== "intent";

/** A cooling record whose time has come. */
export const isDue = (r: Rec, now: number): r is CoolingRecord => r.kind === "cooling" && now >= r.coolUntil;

/** The records a pool of `mode` on `networks` looks after. */
export const belongsTo =
  (mode: Mode, networks: readonly string[]) =>
  (r: Rec): boolean =>
    r.mode === mode && networks.includes(r.networkId);
