// Kernel work as data. A plan is a list of operations; applyPlan() runs them in order and, if one
// throws, undoes the ones that succeeded in reverse before rethrowing. A teardown is a list of
// deletions run best-effort, where "already gone" is success. Plugins build plans with pure
// functions that tests compare as values.
import type { IptablesRuleSet, Kernel, LinkChange, Neighbour, Netns, Route, Rule, VethSpec, Address } from "./types.js";
import { isKernelError } from "./types.js";

export type Op =
  | { op: "createVeth"; ns: Netns; spec: VethSpec }
  | { op: "createLink"; ns: Netns; name: string; kind: "bridge" | "dummy"; mtu?: number }
  | { op: "setLink"; ns: Netns; name: string; change: LinkChange }
  | { op: "moveLink"; ns: Netns; name: string; target: Netns; newName?: string }
  | { op: "addAddress"; ns: Netns; addr: Address }
  | { op: "addRoute"; ns: Netns; route: Route }
  | { op: "addRule"; ns: Netns; rule: Rule }
  | { op: "setNeighbour"; ns: Netns; neigh: Neighbour }
  | { op: "writeSysctl"; ns: Netns; key: string; value: string }
  | { op: "applyIptables"; ns: Netns; set: IptablesRuleSet }
  /** Best-effort: a failed announcement is logged, never fatal, never undone. */
  | { op: "announce"; ns: Netns; dev: string; ip: string };

/** An operation, and whether to keep its effect when a later one fails (node-wide state like ip_forward). */
export type Step = Op & { keep?: boolean };

export type Teardown =
  | { op: "deleteLink"; ns: Netns; name: string }
  | { op: "deleteRoute"; ns: Netns; route: Route }
  | { op: "deleteRule"; ns: Netns; rule: Rule }
  | { op: "deleteNeighbour"; ns: Netns; neigh: Neighbour }
  | { op: "deleteAddress"; ns: Netns; addr: Address }
  | { op: "deleteIptables"; ns: Netns; set: IptablesRuleSet }
  /**
   * Bring a NIC that was moved into a pod home to this namespace under its original name: from the
   * pod if it is there (found by name, else by MAC), else from this namespace by MAC (the kernel
   * returns physical NICs when a namespace dies). A taken original name leaves it under `tempName`.
   */
  | { op: "returnLink"; ns: Netns; from: Netns; name: string; mac?: string; tempName: string; home?: string };

type Undo = () => Promise<void>;

export function describeStep(s: Op | Teardown): string {
  switch (s.op) {
    case "createVeth":
      return `create veth ${s.spec.name} (peer ${s.spec.peer.name})`;
    case "createLink":
      return `create ${s.kind} ${s.name}`;
    case "setLink":
      return `set link ${s.name} ${JSON.stringify(s.change)}`;
    case "moveLink":
      return `move link ${s.name}${s.newName === undefined ? "" : ` as ${s.newName}`}`;
    case "addAddress":
      return `add address ${s.addr.cidr} to ${s.addr.dev}`;
    case "addRoute":
      return `add route ${s.route.dst}${s.route.gw === undefined ? "" : ` via ${s.route.gw}`}${s.route.dev === undefined ? "" : ` dev ${s.route.dev}`}${s.route.table === undefined ? "" : ` table ${s.route.table}`}`;
    case "addRule":
      return `add rule priority ${s.rule.priority} table ${s.rule.table}`;
    case "setNeighbour":
      return `set ${s.neigh.proxy === true ? "proxy " : ""}neighbour ${s.neigh.ip} on ${s.neigh.dev}`;
    case "writeSysctl":
      return `set ${s.key}=${s.value}`;
    case "applyIptables":
      return `apply iptables chains ${s.set.chains.map((c) => c.name).join(",")}`;
    case "announce":
      return `announce ${s.ip} on ${s.dev}`;
    case "deleteLink":
      return `delete link ${s.name}`;
    case "deleteRoute":
      return `delete route ${s.route.dst}`;
    case "deleteRule":
      return `delete rule priority ${s.rule.priority}`;
    case "deleteNeighbour":
      return `delete neighbour ${s.neigh.ip} on ${s.neigh.dev}`;
    case "deleteAddress":
      return `delete address ${s.addr.cidr}`;
    case "deleteIptables":
      return `delete iptables chains ${s.set.chains.map((c) => c.name).join(",")}`;
    case "returnLink":
      return `return link ${s.name}${s.mac === undefined ? "" : ` (${s.mac})`} as ${s.home ?? "its original name"}`;
  }
}

// Links this plan made: a change to one needs no undo of its own (deleting the link undoes it).
const linkKey = (ns: string, name: string): string => `${ns}\0${name}`;

async function run(
  k: Kernel,
  s: Step,
  onWarn: (msg: string, e: unknown) => void,
  made: Set<string>,
): Promise<Undo | undefined> {
  switch (s.op) {
    case "createVeth":
      await k.createVeth(s.ns, s.spec);
      made.add(linkKey(s.ns, s.spec.name)).add(linkKey(s.spec.peer.netns, s.spec.peer.name));
      return async () => void (await k.deleteLink(s.ns, s.spec.name));
    case "createLink":
      await k.createLink(
        s.ns,
        s.mtu === undefined ? { name: s.name, kind: s.kind } : { name: s.name, kind: s.kind, mtu: s.mtu },
      );
      made.add(linkKey(s.ns, s.name));
      return async () => void (await k.deleteLink(s.ns, s.name));
    case "setLink": {
      if (made.has(linkKey(s.ns, s.name)) && s.change.name === undefined) {
        await k.setLink(s.ns, s.name, s.change);
        return undefined;
      }
      const before = await k.getLink(s.ns, s.name);
      await k.setLink(s.ns, s.name, s.change);
      if (before === undefined) return undefined;
      const back: LinkChange = {};
      if (s.change.up !== undefined) back.up = before.up;
      if (s.change.mtu !== undefined) back.mtu = before.mtu;
      if (s.change.mac !== undefined) back.mac = before.mac;
      if (s.change.alias !== undefined) back.alias = before.alias ?? "";
      if (s.change.name !== undefined) back.name = before.name;
      return async () => k.setLink(s.ns, s.change.name ?? s.name, back);
    }
    case "moveLink":
      await k.moveLink(s.ns, s.name, s.target, s.newName);
      return async () => k.moveLink(s.target, s.newName ?? s.name, s.ns, s.name);
    case "addAddress":
      await k.addAddress(s.ns, s.addr);
      return async () => void (await k.deleteAddress(s.ns, s.addr));
    case "addRoute":
      await k.addRoute(s.ns, s.route);
      return async () => void (await k.deleteRoute(s.ns, s.route));
    case "addRule":
      await k.addRule(s.ns, s.rule);
      return async () => void (await k.deleteRule(s.ns, s.rule));
    case "setNeighbour":
      await k.setNeighbour(s.ns, s.neigh);
      return async () => void (await k.deleteNeighbour(s.ns, s.neigh));
    case "writeSysctl": {
      const before = k.readSysctl(s.ns, s.key);
      if (before === s.value) return undefined;
      k.writeSysctl(s.ns, s.key, s.value);
      return before === undefined ? undefined : async () => k.writeSysctl(s.ns, s.key, before);
    }
    case "applyIptables":
      await k.applyIptables(s.ns, s.set);
      return async () => k.deleteIptables(s.ns, s.set);
    case "announce":
      try {
        await k.announce(s.ns, s.dev, s.ip);
      } catch (e) {
        onWarn(`Cannot ${describeStep(s)}`, e);
      }
      return undefined;
  }
}

export interface ApplyOptions {
  onWarn?: (msg: string, e: unknown) => void;
  /** Told of what a step found and did where that is worth a log line (a NIC given back, and its name). */
  onInfo?: (msg: string, fields: Record<string, unknown>) => void;
}

/** Run the steps in order; on a throw, undo what was done (in reverse) and rethrow the original error. */
export async function applyPlan(k: Kernel, steps: readonly Step[], opts: ApplyOptions = {}): Promise<void> {
  const onWarn = opts.onWarn ?? (() => {});
  const undos: Undo[] = [];
  const made = new Set<string>();
  try {
    for (const s of steps) {
      const undo = await run(k, s, onWarn, made);
      if (undo !== undefined && s.keep !== true) undos.push(undo);
    }
  } catch (e) {
    for (const u of undos.reverse()) {
      try {
        await u();
      } catch (ue) {
        onWarn("Cannot undo a step after a failure", ue);
      }
    }
    throw e;
  }
}

async function returnLink(k: Kernel, s: Extract<Teardown, { op: "returnLink" }>, opts: ApplyOptions): Promise<void> {
  const onWarn = opts.onWarn ?? (() => {});
  let home: string | undefined;
  if (s.from !== "" && k.netnsExists(s.from)) {
    const inPod =
      (await k.getLink(s.from, s.name)) ??
      (s.mac === undefined ? undefined : (await k.listLinks(s.from)).find((l) => l.mac === s.mac));
    if (inPod !== undefined && (s.mac === undefined || inPod.mac === s.mac)) {
      await k.setLink(s.from, inPod.name, { up: false });
      await k.moveLink(s.from, inPod.name, s.ns, s.tempName);
      home = s.tempName;
    }
  }
  if (home === undefined && s.mac !== undefined)
    home = (await k.listLinks(s.ns)).find((l) => l.mac === s.mac && l.master === undefined)?.name;
  if (home === undefined) return;
  const link = await k.getLink(s.ns, home);
  const want = s.home ?? (link?.alias !== undefined && link.alias !== "" ? link.alias : undefined);
  let name = home;
  if (want !== undefined && want !== home) {
    // The name may be taken, also by a concurrent DEL: the VM reuses the first free ensN for each
    // hot-plug, so several pods' NICs can share an original name.
    try {
      await k.setLink(s.ns, home, { up: false, name: want });
      name = want;
    } catch (e) {
      if (!isKernelError(e, "EEXIST")) throw e;
      onWarn(`The NIC's original name ${want} is taken; it stays ${home}`, e);
    }
  }
  await k.setLink(s.ns, name, { alias: "" });
  opts.onInfo?.("returned the NIC to the VM", { name, mac: s.mac });
}

/** Run every deletion; missing things are fine. Returns the errors that were not "already gone". */
export async function runTeardown(k: Kernel, steps: readonly Teardown[], opts: ApplyOptions = {}): Promise<Error[]> {
  const errors: Error[] = [];
  for (const s of steps) {
    try {
      if (!k.netnsExists(s.ns)) continue;
      switch (s.op) {
        case "deleteLink":
          await k.deleteLink(s.ns, s.name);
          break;
        case "deleteRoute":
          await k.deleteRoute(s.ns, s.route);
          break;
        case "deleteRule":
          await k.deleteRule(s.ns, s.rule);
          break;
        case "deleteNeighbour":
          await k.deleteNeighbour(s.ns, s.neigh);
          break;
        case "deleteAddress":
          await k.deleteAddress(s.ns, s.addr);
          break;
        case "deleteIptables":
          await k.deleteIptables(s.ns, s.set);
          break;
        case "returnLink":
          await returnLink(k, s, opts);
          break;
      }
    } catch (e) {
      if (isKernelError(e) && (e.missing || e.errno === "ENOENT_NETNS")) continue;
      errors.push(e instanceof Error ? e : new Error(String(e)));
    }
  }
  return errors;
}
