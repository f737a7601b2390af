// mix mode: a pod address is one more fixed IP of the VM's own port. Add = the whole current list
// plus one {subnet_id} (or one chosen address), guarded by If-Match, retried with jitter on 412, the
// new address found as the set difference and confirmed by reading the port back. Real Neutron's
// If-Match is not a true compare-and-swap under concurrency (research/realcloud.md §6.3), so the
// caller holds the node-wide lock: one writer per port, with If-Match guarding against others.
import { tryAgainLater } from "../cni/errors.js";
import { isOpenStackError, isTransient } from "../openstack/errors.js";
import { retry, RetryExhaustedError } from "../util/retry.js";
import type { Neutron } from "../openstack/neutron.js";
import type { FixedIp, Port, Subnet } from "../openstack/types.js";
import type { Logger } from "../log/logger.js";
import type { Clock } from "../base/clock.js";
import type { IpamConfig } from "./config.js";
import type { NodeCache } from "./node-cache.js";
import { clusterTag, MIX_TAG, nodeIpTag, nodeTag } from "./tags.js";
import type { VmPort } from "./vm-port.js";

export interface MixDeps {
  cfg: IpamConfig;
  neutron: Neutron;
  clock: Clock;
  log: Logger;
  cache?: NodeCache;
  /** The random source of retry jitter (Math.random when absent). */
  random?: () => number;
  /** Choose the fixed_ips entries to request on a subnet, up to `count` (per-node blocks pick addresses). */
  chooseEntries?(vm: VmPort, subnet: Subnet, count: number): Promise<Array<Partial<FixedIp>>>;
}

const entries = (ips: readonly FixedIp[]): FixedIp[] =>
  ips.map((f) => ({ subnet_id: f.subnet_id, ip_address: f.ip_address }));

/** The IPv4 subnets to allocate from on a network: configured `subnets` (in their order) or all. */
export async function candidateSubnets(
  neutron: Neutron,
  cfg: IpamConfig,
  networkId: string,
  cache?: NodeCache,
  now = Date.now(),
): Promise<Subnet[]> {
  let all = cache?.subnets(networkId, now);
  if (all === undefined) {
    all = (await neutron.listSubnets({ network_id: networkId })).filter((s) => s.ip_version === 4);
    cache?.setSubnets(networkId, all, now);
  }
  if (cfg.subnets.length === 0) return all;
  return cfg.subnets.map((id) => all.find((s) => s.id === id)).filter((s): s is Subnet => s !== undefined);
}

// The VM port says it carries pods, via which address, and for which server: the route controller
// releases the pods' addresses of a port whose server is gone (Nova unbinds a port it did not make).
// Returns whether it added a tag (each one bumps the port's revision).
async function markPort(d: MixDeps, vm: VmPort, port: Port): Promise<boolean> {
  let added = false;
  for (const tag of [MIX_TAG, nodeIpTag(vm.nodeIp), nodeTag(vm.serverId), clusterTag(d.cfg.cluster)]) {
    if (port.tags.includes(tag)) continue;
    await d.neutron.addTag("ports", port.id, tag);
    added = true;
  }
  return added;
}

/** A lost revision race, or our change undone by another writer: worth another attempt. */
class LostRace extends Error {}

const conflictRetry = (d: Pick<MixDeps, "cfg" | "clock" | "log" | "random">, portId: string) => ({
  maxAttempts: d.cfg.conflictAttempts,
  minDelayMs: 10,
  maxDelayMs: 500,
  retriable: (e: unknown) => e instanceof LostRace,
  sleep: (ms: number) => d.clock.sleep(ms),
  ...(d.random === undefined ? {} : { random: d.random }),
  onRetry: (e: unknown, attempt: number) =>
    d.log.debug("lost a race on the port, retrying", { port: portId, attempt, error: e }),
});

/**
 * The intent a write of new addresses stands under (a pod's add, a pool's batch): written durably
 * before each attempt with the port's addresses before it, so that what appears beyond them can be
 * found and removed after a crash; cleared once nothing of it can be on the port.
 */
export interface AddIntent {
  write(before: string[]): void;
  clear(): void;
  /** Whether some record holds `ip` already (an address that is not ours to undo). */
  known(ip: string): boolean;
}

/**
 * Add `count` addresses on `subnet` to the VM's port in one fixed_ips write (a warm pool's batch, or
 * one pod's address). Returns those that landed (fewer when the subnet runs out; none when it is
 * exhausted, with the intent cleared). On success the intent is left for the caller to replace.
 * `known`: the port as the caller last read it (a pool's previous batch): the first write goes with
 * its revision instead of reading the port again; when someone wrote since, Neutron refuses it (412)
 * and the next attempt reads. `seen` is told the port as read back after the write.
 */
export async function addMany(
  d: MixDeps,
  vm: VmPort,
  subnet: Subnet,
  intent: AddIntent,
  count: number,
  opts: { known?: Port; seen?: (p: Port) => void } = {},
): Promise<string[]> {
  try {
    return await retry(
      async (attempt) => {
        let port = attempt === 0 && opts.known !== undefined ? opts.known : await d.neutron.getPort(vm.portId);
        // A tag added changes the revision: read it again rather than lose the write to a 412.
        if (attempt === 0 && (await markPort(d, vm, port))) port = await d.neutron.getPort(vm.portId);
        const chosen = (await d.chooseEntries?.(vm, subnet, count)) ?? [];
        const wanted = Array.from({ length: count }, (_, i): Partial<FixedIp> => chosen[i] ?? { subnet_id: subnet.id });
        const before = new Set(port.fixed_ips.map((f) => f.ip_address));
        intent.write([...before]);
        let after: Port;
        try {
          after = await d.neutron.updateFixedIps(
            port.id,
            [...entries(port.fixed_ips), ...wanted],
            port.revision_number,
          );
        } catch (e) {
          if (isOpenStackError(e, "RevisionNumberConstraintFailed")) throw new LostRace(e.message, { cause: e });
          if (isOpenStackError(e, "IpAddressGenerationFailure") || isOpenStackError(e, "IpAddressAlreadyAllocated")) {
            intent.clear();
            if (isOpenStackError(e, "IpAddressAlreadyAllocated")) throw new LostRace(e.message, { cause: e });
            // A batch larger than what is left: ask for one, as a single pod would.
            if (count > 1) return addMany(d, vm, subnet, intent, 1);
            return [];
          }
          if (isTransient(e)) await undoUncertainAdd(d, vm.portId, before, intent);
          else intent.clear();
          // A cached subnet that no longer exists: forget the cache, the next ADD looks again.
          if (isOpenStackError(e, "SubnetNotFound")) d.cache?.setSubnets(vm.networkId, undefined, d.clock.now());
          throw e;
        }
        const added = after.fixed_ips
          .filter((f) => !before.has(f.ip_address) && f.subnet_id === subnet.id)
          .map((f) => f.ip_address);
        if (added.length === 0) throw new LostRace("the update answered without a new address");
        // Read back: with several writers, real Neutron may have merged or undone our change.
        const check = await d.neutron.getPort(port.id);
        opts.seen?.(check);
        const ips = added.filter((a) => check.fixed_ips.some((f) => f.ip_address === a));
        if (ips.length === 0) {
          d.log.warn("our address vanished from the port after the update (a concurrent writer?), retrying", {
            port: port.id,
            added,
          });
          throw new LostRace("our address vanished from the port after the update");
        }
        return ips;
      },
      conflictRetry(d, vm.portId),
    );
  } catch (e) {
    if (!(e instanceof RetryExhaustedError)) throw e;
    intent.clear();
    throw tryAgainLater(
      `Cannot add an address to port ${vm.portId}: lost ${d.cfg.conflictAttempts} revision races (PUT /v2.0/ports/${vm.portId}, 412 RevisionNumberConstraintFailed)`,
      e,
    );
  }
}

// The update failed in a way that may or may not have committed (a 5xx, a dropped connection). Read
// the port back and take away anything that appeared; if even that fails, the intent stays and a
// later DEL, GC or the agent's upkeep finishes the job.
async function undoUncertainAdd(d: MixDeps, portId: string, before: Set<string>, intent: AddIntent): Promise<void> {
  try {
    await removeAddresses(d, portId, (f) => !before.has(f.ip_address) && !intent.known(f.ip_address));
    intent.clear();
  } catch (e) {
    d.log.warn("cannot tell whether a failed update added an address; leaving it for later", {
      port: portId,
      error: e,
    });
  }
}

/** Remove every fixed IP matching `drop` from a port (If-Match, retried on 412). Missing port: done. */
export async function removeAddresses(
  d: Pick<MixDeps, "neutron" | "cfg" | "clock" | "log" | "random">,
  portId: string,
  drop: (f: FixedIp) => boolean,
): Promise<string[]> {
  try {
    return await retry(
      async () => {
        let port: Port;
        try {
          port = await d.neutron.getPort(portId);
        } catch (e) {
          if (isOpenStackError(e, "PortNotFound")) return [];
          throw e;
        }
        const gone = port.fixed_ips.filter(drop);
        if (gone.length === 0) return [];
        try {
          await d.neutron.updateFixedIps(portId, entries(port.fixed_ips.filter((f) => !drop(f))), port.revision_number);
        } catch (e) {
          if (isOpenStackError(e, "RevisionNumberConstraintFailed")) throw new LostRace(e.message, { cause: e });
          if (isOpenStackError(e, "PortNotFound")) return [];
          throw e;
        }
        const check = await d.neutron.getPort(portId);
        if (check.fixed_ips.some(drop)) throw new LostRace("the addresses are still on the port after the update");
        return gone.map((f) => f.ip_address);
      },
      conflictRetry(d, portId),
    );
  } catch (e) {
    if (!(e instanceof RetryExhaustedError)) throw e;
    throw tryAgainLater(
      `Cannot remove addresses from port ${portId}: lost ${d.cfg.conflictAttempts} revision races (PUT /v2.0/ports/${portId}, 412 RevisionNumberConstraintFailed)`,
      e,
    );
  }
}
