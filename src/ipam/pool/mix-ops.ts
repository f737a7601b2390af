// mix mode's cloud work for a pool: addresses are extra fixed IPs of the VM's own port, added in
// one fixed_ips write per batch (the pool's, or one pod's on demand), removed in one write, and
// marked `tcnp-pool=<ip>` on the port while they are the pool's (so gc, doctor and the route
// controller tell them from pods'). Every write of the port holds the port lock, with its intent
// recorded first.
import { CniCode, CniError } from "../../cni/errors.js";
import type { CniResult } from "../../cni/result.js";
import { parseCidr } from "../../net/ip.js";
import { isOpenStackError } from "../../openstack/errors.js";
import type { FixedIp, Port, Subnet } from "../../openstack/types.js";
import { blockChooser } from "../blocks.js";
import type { HeldAddress } from "../ledger/ledger.js";
import {
  addressKey,
  fillKey,
  keyOf,
  ownerKey,
  type Address,
  type IntentRecord,
  type Owner,
  type PodRecord,
} from "../ledger/records.js";
import { addMany, candidateSubnets, removeAddresses, type AddIntent, type MixDeps } from "../mix.js";
import { subnetFields } from "../subnet.js";
import { clusterTag, MIX_TAG, nodeIpTag, poolTag, POOL_TAG_PREFIX } from "../tags.js";
import { findVmPorts, type VmPort } from "../vm-port.js";
import type { ModeOps, PoolContext } from "./ops.js";

export class MixOps implements ModeOps {
  readonly mode = "mix" as const;
  readonly batched = true;
  readonly #c: PoolContext;
  #vm: VmPort | undefined;
  #subnet: Subnet | undefined;
  /** Subnets a batch found full (tried again once every one of them is). */
  readonly #full = new Set<string>();
  /** The VM's port as the last batch read it back; forgotten when this pool writes it otherwise. */
  #lastPort: Port | undefined;
  /** The free addresses the port's tags named after the last relabel. */
  #labelled: string | undefined;

  constructor(c: PoolContext) {
    this.#c = c;
  }

  get port(): string | undefined {
    return this.#vm?.portId;
  }

  #d(): MixDeps {
    const s = this.#c.s;
    const m: MixDeps = { cfg: s.cfg, neutron: s.clients.neutron, clock: s.deps.clock, log: s.deps.log, cache: s.cache };
    if (s.deps.random !== undefined) m.random = s.deps.random;
    if (s.cfg.nodeBlockPrefix !== undefined) m.chooseEntries = blockChooser(s.cfg, s.clients.neutron, s.deps.log);
    return m;
  }

  async #vms(): Promise<VmPort[]> {
    const s = this.#c.s;
    return findVmPorts(s.clients.neutron, await s.deps.kernel(), await s.serverId(), s.cfg.networks, s.cache);
  }

  // The VM's port and the subnet the pool fills from (the next one once it is exhausted).
  async #where(): Promise<{ vm: VmPort; subnet: Subnet }> {
    this.#vm ??= (await this.#vms())[0]!;
    if (this.#subnet === undefined) {
      const s = this.#c.s;
      const subnets = await candidateSubnets(s.clients.neutron, s.cfg, this.#vm.networkId, s.cache);
      if (subnets.length === 0)
        throw new CniError(CniCode.AddressExhausted, `Network ${this.#vm.networkId} has no IPv4 subnet to pool from`);
      if (subnets.every((x) => this.#full.has(x.id))) this.#full.clear();
      this.#subnet = subnets.find((x) => !this.#full.has(x.id))!;
    }
    return { vm: this.#vm, subnet: this.#subnet };
  }

  // Where the pool's addresses on `subnet` live: the VM's port.
  #at(vm: VmPort, subnet: Subnet): Address & { portId: string } {
    return {
      mode: "mix",
      serverId: vm.serverId,
      networkId: vm.networkId,
      portId: vm.portId,
      subnetId: subnet.id,
      mac: vm.mac,
      hostIfname: vm.hostIf,
      ...subnetFields(subnet),
    };
  }
  #held(vm: VmPort, subnet: Subnet, ip: string): HeldAddress {
    return { ...this.#at(vm, subnet), ip };
  }

  // The intent hooks of one write: `key` is recorded before each attempt with the port's addresses.
  #intent(key: string, begin: (before: string[]) => void): AddIntent {
    const L = this.#c.ledger;
    return {
      write: (before) => (L.get(key) === undefined ? begin(before) : L.note(key, { before }, this.#c.now())),
      clear: () => {
        if (L.get(key) !== undefined) L.undo(key);
      },
      known: (ip) => L.knows(ip),
    };
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    return this.#c.portLock.withLock("mix-port", fn, { timeoutMs: this.#c.s.cfg.timeouts.lockMs });
  }

  async cap(free: number): Promise<number> {
    const { subnet } = await this.#where();
    const size = 2 ** (32 - parseCidr(subnet.cidr).prefix);
    return Math.max(1, Math.floor(size / 4)) - free;
  }

  async fill(n: number): Promise<number> {
    return this.#locked(async () => {
      const { vm, subnet } = await this.#where();
      const L = this.#c.ledger;
      const key = fillKey(vm.portId);
      // An earlier batch interrupted (a killed agent): undone before a new intent takes its place.
      const left = L.get(key);
      if (left?.kind === "intent" && L.claim(key)) await this.#undoAdd(left).finally(() => L.unclaim(key));
      try {
        const ips = await addMany(
          this.#d(),
          vm,
          subnet,
          this.#intent(key, (before) => L.beginFill(this.#at(vm, subnet), before, this.#c.now())),
          n,
          {
            ...(this.#lastPort === undefined ? {} : { known: this.#lastPort }),
            seen: (p) => (this.#lastPort = p),
          },
        );
        if (ips.length === 0) {
          // exhausted: the next subnet next time; when every one is, the pods waiting are told so
          this.#full.add(subnet.id);
          this.#subnet = undefined;
          throw new CniError(
            CniCode.AddressExhausted,
            `No addresses left for pods: subnet ${subnet.id} of ipam.neutronConf.networks [${this.#c.s.cfg.networks.join(", ")}] on this VM's port is exhausted (409 IpAddressGenerationFailure)`,
          );
        }
        this.#full.delete(subnet.id);
        L.fillDone(
          vm.portId,
          ips.map((ip) => this.#held(vm, subnet, ip)),
          this.#c.now(),
        );
        return ips.length;
      } finally {
        L.unclaim(key);
      }
    });
  }

  async addFor(o: Owner): Promise<PodRecord> {
    const L = this.#c.ledger;
    const key = ownerKey(o);
    return this.#locked(async () => {
      for (const vm of await this.#vms()) {
        const s = this.#c.s;
        for (const subnet of await candidateSubnets(s.clients.neutron, s.cfg, vm.networkId, s.cache, this.#c.now())) {
          const at = this.#at(vm, subnet);
          this.#lastPort = undefined;
          let ips: string[];
          try {
            ips = await addMany(
              this.#d(),
              vm,
              subnet,
              this.#intent(key, (before) => L.beginAdd(o, { ...at, before }, this.#c.now())),
              1,
            );
          } finally {
            L.unclaim(key);
          }
          if (ips.length === 0) {
            s.deps.log.info("subnet exhausted, trying the next", { subnet: subnet.id, network: vm.networkId });
            continue;
          }
          return L.addDone(o, this.#held(vm, subnet, ips[0]!), this.#c.now());
        }
      }
      throw new CniError(
        CniCode.AddressExhausted,
        `No addresses left for pods: every subnet of ipam.neutronConf.networks [${this.#c.s.cfg.networks.join(", ")}] on this VM's ports is exhausted (409 IpAddressGenerationFailure)`,
      );
    });
  }

  async takeable(): Promise<() => Partial<Address>> {
    return () => ({});
  }

  async coolDown(o: Owner, coolUntil: number): Promise<void> {
    this.#c.ledger.coolDown(o, { coolUntil }, this.#c.now());
  }

  // One write removes every address given back on a port; an address another record holds by now
  // (a release whose answer was lost, the address since given to this node again) is theirs.
  async giveBack(intents: IntentRecord[]): Promise<void> {
    const L = this.#c.ledger;
    const byPort = new Map<string, IntentRecord[]>();
    for (const i of intents) {
      if (i.ip === undefined || i.portId === undefined || L.heldByAnother(i)) {
        if (i.owner !== undefined && L.heldByAnother(i)) L.dropShared(i.owner);
        else L.released(keyOf(i));
        continue;
      }
      byPort.set(i.portId, [...(byPort.get(i.portId) ?? []), i]);
    }
    for (const [portId, list] of byPort) {
      const gone = new Set(list.map((i) => i.ip));
      try {
        await this.#locked(async () => {
          this.#lastPort = undefined;
          await removeAddresses(this.#d(), portId, (f: FixedIp) => gone.has(f.ip_address));
        });
      } catch (e) {
        for (const i of list) L.failed(keyOf(i), (e as Error).message, this.#c.now());
        throw e;
      }
      for (const i of list) L.released(keyOf(i));
      this.#c.s.deps.log.info("addresses given back to Neutron", { released: list.length, port: portId });
    }
  }

  async undo(i: IntentRecord): Promise<void> {
    await this.#locked(() => this.#undoAdd(i));
  }

  // Crashed or failed between the intent and the record: drop what appeared on the port beyond the
  // addresses it had before, if no record holds it.
  async #undoAdd(i: IntentRecord): Promise<void> {
    const L = this.#c.ledger;
    try {
      if (i.portId !== undefined && i.before !== undefined) {
        const before = new Set(i.before);
        this.#lastPort = undefined;
        await removeAddresses(
          this.#d(),
          i.portId,
          (f) => !before.has(f.ip_address) && !L.knows(f.ip_address) && f.subnet_id === i.subnetId,
        );
      }
    } catch (e) {
      L.failed(keyOf(i), (e as Error).message, this.#c.now());
      throw e;
    }
    L.undo(keyOf(i));
  }

  // Adopt what the port's pool tags name and no record knows (records lost with the disk); forget
  // pool records whose address is no longer on the port. Neutron is the truth for what it holds.
  async recover(): Promise<number> {
    const { vm, subnet } = await this.#where();
    const L = this.#c.ledger;
    return this.#locked(async () => {
      const port = await this.#c.s.clients.neutron.getPort(vm.portId);
      const onPort = new Map(port.fixed_ips.map((f) => [f.ip_address, f]));
      let adopted = 0;
      const now = this.#c.now();
      for (const t of port.tags.filter((x) => x.startsWith(POOL_TAG_PREFIX))) {
        const ip = t.slice(POOL_TAG_PREFIX.length);
        const f = onPort.get(ip);
        if (f === undefined || L.knows(ip) || ip === vm.nodeIp || L.claimed(addressKey(ip))) continue;
        L.adopt({ ...this.#held(vm, subnet, ip), subnetId: f.subnet_id }, now);
        adopted++;
      }
      for (const r of L.all((x) => this.#c.mine(x) && x.kind === "pool" && x.portId === vm.portId))
        if (!onPort.has(r.ip!)) L.forget(r.ip!);
      this.#labelled = undefined;
      return adopted;
    });
  }

  // The port's tcnp-pool=<ip> tags name the pool's free addresses; one write replaces them all, when
  // the free set changed since the last one. Off the port lock: tags are a label, the records are the truth.
  async relabel(): Promise<void> {
    const { vm } = await this.#where();
    const free = this.#c.ledger.free((r) => this.#c.mine(r) && r.portId === vm.portId).map((r) => r.ip);
    const want = [...free].sort().join(" ");
    if (want === this.#labelled) return;
    const port = await this.#c.s.clients.neutron.getPort(vm.portId);
    const others = port.tags.filter((t) => !t.startsWith(POOL_TAG_PREFIX));
    const tags = [
      ...new Set([...others, MIX_TAG, nodeIpTag(vm.nodeIp), clusterTag(this.#c.s.cfg.cluster), ...free.map(poolTag)]),
    ];
    if (tags.length !== port.tags.length || !tags.every((t) => port.tags.includes(t))) {
      try {
        this.#lastPort = undefined;
        await this.#c.s.clients.neutron.setTags("ports", vm.portId, tags);
      } catch (e) {
        if (!isOpenStackError(e, "PortNotFound")) throw e;
      }
    }
    this.#labelled = want;
  }

  // No record (state lost): prevResult says which addresses this attachment had. Release them only
  // if no record holds them, so a repeated DEL never takes a reused address.
  async releaseUnknown(_o: Owner, prev: CniResult | undefined): Promise<void> {
    const L = this.#c.ledger;
    const mine = (prev?.ips ?? []).map((i) => i.address.split("/")[0]!).filter((ip) => !L.knows(ip));
    if (mine.length === 0) return;
    for (const vm of await this.#vms()) {
      const removed = await this.#locked(() =>
        removeAddresses(this.#d(), vm.portId, (f) => mine.includes(f.ip_address) && f.ip_address !== vm.nodeIp),
      );
      if (removed.length > 0)
        this.#c.s.deps.log.info("released from prevResult (no local record)", { ips: removed, port: vm.portId });
    }
  }

  async collectOrphans(): Promise<string[]> {
    return [];
  }
}
