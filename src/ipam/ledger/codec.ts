// Records as they are stored: read back with a check of their shape (a record this version does not
// understand is skipped, never guessed at), and the one-file-per-record allocations of earlier
// versions turned into ledger records when a node is upgraded.
import { isObject } from "../../cni/netconf.js";
import { keyOf, type Address, type IntentOp, type Owner, type Rec } from "./records.js";

const KINDS = new Set(["pod", "pool", "cooling", "intent"]);
const OPS = new Set<IntentOp>(["add", "fill", "grow", "release"]);

const str = (v: unknown): v is string => typeof v === "string" && v !== "";
const isOwner = (v: unknown): v is Owner => isObject(v) && str(v["containerId"]) && str(v["ifname"]);

/** A stored record, if it is one this version understands. */
export function parseRec(x: unknown): Rec | undefined {
  if (!isObject(x) || !KINDS.has(x["kind"] as string)) return undefined;
  if (x["mode"] !== "mix" && x["mode"] !== "eni") return undefined;
  if (typeof x["serverId"] !== "string" || !str(x["networkId"])) return undefined;
  if (typeof x["createdAt"] !== "number" || typeof x["updatedAt"] !== "number") return undefined;
  const r = x as unknown as Rec;
  switch (r.kind) {
    case "pod":
      return isOwner(r.owner) && str(r.ip) && str(r.portId) ? r : undefined;
    case "pool":
      return str(r.ip) && str(r.portId) ? r : undefined;
    case "cooling":
      return str(r.ip) && str(r.portId) && typeof r.coolUntil === "number" && typeof r.heldBy === "string"
        ? r
        : undefined;
    case "intent":
      if (!OPS.has(r.op) || (r.owner !== undefined && !isOwner(r.owner))) return undefined;
      if (r.owner === undefined && (r.op === "fill" ? !str(r.portId) : !str(r.ip))) return undefined;
      return r;
  }
}

/** The key of a stored record (undefined: not a record this version understands). */
export const storedKey = (x: unknown): string | undefined => {
  const r = parseRec(x);
  return r === undefined ? undefined : keyOf(r);
};

/** An allocation record as versions before the ledger wrote it (one file per record). */
export interface LegacyAllocation extends Address {
  containerId: string;
  ifname: string;
  state: "adding" | "active" | "releasing" | "cooling" | "pool";
  before?: string[];
  coolUntil?: number;
  heldBy?: string;
  detached?: boolean;
  labelled?: "active" | "pool";
  error?: string;
  createdAt: number;
  updatedAt: number;
}

/**
 * The ledger record an earlier version's allocation stands for. Those versions told the kinds
 * apart by the container ID they filed a record under: `pool-<ip>` (a pool address, or an eni
 * pool port being made), `cooldown-<ip>` (cooling), `pool-fill` (a mix batch); anything else was a
 * pod attachment. This is the one place that reads those names.
 */
export function fromLegacy(a: LegacyAllocation): Rec | undefined {
  const addr: Address = { ...a };
  for (const k of [
    "containerId",
    "ifname",
    "state",
    "before",
    "coolUntil",
    "heldBy",
    "detached",
    "labelled",
    "error",
    "createdAt",
    "updatedAt",
    "pid",
  ])
    delete (addr as unknown as Record<string, unknown>)[k];
  const stamps = { createdAt: a.createdAt, updatedAt: a.updatedAt };
  const ofAddress = a.containerId.startsWith("pool-") || a.containerId.startsWith("cooldown-");
  const owner: Owner = { containerId: a.containerId, ifname: a.ifname };
  const extra = {
    ...(a.before === undefined ? {} : { before: a.before }),
    ...(a.coolUntil === undefined ? {} : { coolUntil: a.coolUntil }),
    ...(a.error === undefined ? {} : { error: a.error }),
  };
  const hasAddress = a.ip !== undefined && a.portId !== undefined;
  let r: Rec | undefined;
  switch (a.state) {
    case "active":
      r = hasAddress
        ? {
            ...addr,
            ip: a.ip!,
            portId: a.portId!,
            kind: "pod",
            owner,
            ...(a.labelled === undefined ? {} : { labelled: a.labelled === "active" }),
            ...stamps,
          }
        : { ...addr, kind: "intent", op: "release", owner, ...extra, ...stamps };
      break;
    case "pool":
      if (!hasAddress) return undefined;
      r = {
        ...addr,
        ip: a.ip!,
        portId: a.portId!,
        kind: "pool",
        ...(a.labelled === undefined ? {} : { labelled: a.labelled === "pool" }),
        ...stamps,
      };
      break;
    case "cooling":
      if (!hasAddress) return undefined;
      r = {
        ...addr,
        ip: a.ip!,
        portId: a.portId!,
        kind: "cooling",
        coolUntil: a.coolUntil ?? 0,
        heldBy: a.heldBy ?? "",
        ...(a.detached === true ? { detached: true } : {}),
        ...stamps,
      };
      break;
    case "adding":
      if (a.containerId === "pool-fill") r = { ...addr, kind: "intent", op: "fill", ...extra, ...stamps };
      else if (ofAddress) r = { ...addr, kind: "intent", op: "grow", ...extra, ...stamps };
      else r = { ...addr, kind: "intent", op: "add", owner, ...extra, ...stamps };
      break;
    case "releasing":
      r = { ...addr, kind: "intent", op: "release", ...(ofAddress ? {} : { owner }), ...extra, ...stamps };
      break;
  }
  return parseRec(r);
}
