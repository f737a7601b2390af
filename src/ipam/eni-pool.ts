// The node agent's warm pool of eni ports for one configuration: Neutron ports created, tagged as
// the pool's and attached to this VM ahead of time, their NICs waiting in the VM; a pod's ADD takes
// one (a record change, no cloud call) and host-device moves its NIC into the pod. DEL gives it back
// after the cool-down (the port stays attached, its NIC returned to the VM by host-device); surplus
// ports are detached and deleted. Records are the same store and states as the mix pool's.
import { CniCode, CniError, tryAgainLater } from "../cni/errors.js";
import { HOST } from "../kernel/types.js";
import { isOpenStackError } from "../openstack/errors.js";
import type { Port, Subnet } from "../openstack/types.js";
import { MemoryLock } from "../state/lock.js";
import { destroyPort, waitForNic, type EniDeps } from "./eni.js";
import { candidateSubnets } from "./mix.js";
import {
  CloudBackoff,
  poolKeyOf,
  PoolWork,
  poolView,
  type PoolEvents,
  type PoolTargets,
  type PoolView,
  waitForCooled,
} from "./pool.js";
import type { IpamSession } from "./session.js";
import { coolDown, poolKey, subnetFields, type Allocation } from "./store.js";
import { containerTag, ENI_POOL_NAME, ENI_TAG, eniPoolDescription, ifnameTag, nodeTag } from "./tags.js";

/** An eni port kept in the node agent's pool. */
export const ENI_POOL_TAG = "tcnp-eni-pool";

export class EniPool {
  readonly key: string;
  readonly #s: IpamSession;
  readonly #targets: PoolTargets;
  readonly #events: PoolEvents | undefined;
  readonly #work: PoolWork;
  readonly #deadlineMs: number;
  readonly #recs = new MemoryLock();
  #waiting = 0;
  readonly #backoff = new CloudBackoff();
  #serverId: string | undefined;
  /** When the next look for pool ports no record knows is due (at start, then every 30 s). */
  #recoverAt = 0;

  constructor(s: IpamSession, opts: { targets: PoolTargets; deadlineMs: number; events?: PoolEvents }) {
    this.key = poolKeyOf(s.cfg);
    this.#s = s;
    this.#targets = opts.targets;
    this.#deadlineMs = opts.deadlineMs;
    this.#events = opts.events;
    this.#work = new PoolWork({
      maintain: () => this.#maintain(),
      fill: () => this.#fillBatch(),
      clock: s.deps.clock,
    });
  }

  #now(): number {
    return this.#s.deps.clock.now();
  }
  async #d(): Promise<EniDeps> {
    return this.#s.eniDeps();
  }
  async #server(): Promise<string> {
    this.#serverId ??= await this.#s.serverId();
    return this.#serverId;
  }
  #records(): Allocation[] {
    return this.#s.store.list().filter((a) => a.mode === "eni" && this.#s.cfg.networks.includes(a.networkId));
  }
  #free(): Allocation[] {
    const held = new Set(
      this.#records()
        .filter((a) => a.state === "active" || a.state === "cooling")
        .map((a) => a.portId),
    );
    return this.#records()
      .filter((a) => a.state === "pool" && !held.has(a.portId))
      .sort((a, b) => a.createdAt - b.createdAt);
  }
  #room(all: Allocation[]): number {
    return Math.max(0, this.#targets.maximum - all.filter((a) => a.state !== "releasing").length);
  }

  view(): PoolView {
    const all = this.#records();
    return poolView({
      key: this.key,
      mode: "eni",
      networks: this.#s.cfg.networks,
      records: all,
      free: this.#free(),
      targets: this.#targets,
      room: this.#room(all),
      backoff: this.#backoff,
      now: this.#now(),
      // a search for ports whose create answer was lost is pending cloud work too
      morePending: this.#recoverAt === 0 ? 1 : 0,
    });
  }

  podView(containerId: string, ifname: string): { allocation?: Allocation; inPool: boolean; cooling: boolean } {
    const a = this.#s.store.get(containerId, ifname);
    if (a === undefined) return { inPool: false, cooling: false };
    return {
      allocation: a,
      inPool: this.#free().some((p) => p.portId === a.portId),
      cooling: this.#records().some((r) => r.state === "cooling" && r.portId === a.portId),
    };
  }

  async allocate(who: { containerId: string; ifname: string }): Promise<Allocation> {
    const deadline = this.#now() + this.#deadlineMs;
    const left = this.#s.store.get(who.containerId, who.ifname);
    if (left !== undefined && left.state !== "active") await this.#s.release(left);
    this.#waiting++;
    try {
      for (;;) {
        const a = await this.#recs.withLock("records", () => this.#take(who));
        if (a !== undefined) {
          this.kick();
          return a;
        }
        const wait = this.#backoff.waitOut(this.#now(), deadline);
        if (wait === undefined)
          throw tryAgainLater(
            `The cloud is failing and this node's eni pool is empty: ${this.#backoff.error} (the agent retries with backoff; pods start again when the cloud answers)`,
          );
        if (wait > 0) {
          await this.#s.deps.clock.sleep(wait);
          continue;
        }
        if (this.#now() >= deadline)
          throw tryAgainLater(
            `No pool port within ${this.#deadlineMs / 1000} s: the node agent is still filling its eni pool (${this.#backoff.error ?? "Nova attaches take time"})`,
          );
        const all = this.#records();
        if (this.#room(all) === 0) {
          const tail = await waitForCooled(all, deadline, this.#s.deps.clock, () => this.maintain());
          if (tail === undefined) continue;
          throw new CniError(
            CniCode.AddressExhausted,
            `This node holds its maximum of ${this.#targets.maximum} eni ports for ipam.neutronConf.networks [${this.#s.cfg.networks.join(", ")}] (ipam.pool.maximum)${tail}`,
          );
        }
        await this.#work.fill();
      }
    } finally {
      this.#waiting--;
    }
  }

  // The pod's own record, or the oldest free pool port whose NIC is still in the VM made the pod's.
  async #take(who: { containerId: string; ifname: string }): Promise<Allocation | undefined> {
    const store = this.#s.store;
    const existing = store.get(who.containerId, who.ifname);
    if (existing?.state === "active") return existing;
    const links = await (await this.#s.deps.kernel()).listLinks(HOST);
    for (const p of this.#free()) {
      const nic = links.find((l) => l.mac === p.mac?.toLowerCase() && l.master === undefined);
      if (nic === undefined) {
        // Its NIC is gone from the VM (detached behind our back): not a pool port any more.
        store.put({ ...p, state: "releasing", error: "its NIC is no longer in the VM", updatedAt: this.#now() });
        continue;
      }
      const now = this.#now();
      const a: Allocation = {
        ...p,
        containerId: who.containerId,
        ifname: who.ifname,
        state: "active",
        hostIfname: nic.name,
        createdAt: now,
        updatedAt: now,
      };
      store.put(a);
      store.delete(p.containerId, p.ifname);
      return a;
    }
    return undefined;
  }

  /** DEL: the pod's port becomes a cooling record (it stays attached); false if not ours to take. */
  async takeBack(who: { containerId: string; ifname: string }): Promise<boolean> {
    return this.#recs.withLock("records", async () => {
      const a = this.#s.store.get(who.containerId, who.ifname);
      if (a?.state !== "active" || a.ip === undefined || a.portId === undefined || a.mac === undefined) return false;
      const now = this.#now();
      coolDown(this.#s.store, a, a.ip, { coolUntil: now + this.#s.cfg.coolDownMs, now });
      return true;
    });
  }

  // Create, tag and attach ports one by one (Nova attaches one at a time per VM anyway), each
  // recorded as soon as its NIC is in the VM; a crash in between leaves a port the pool's tag and
  // description name, adopted or removed by the next agent's recovery.
  async #fillBatch(): Promise<void> {
    try {
      const all = this.#records();
      const free = this.#free().length;
      const inUse = all.filter((a) => a.state === "active").length;
      let want = Math.max(this.#targets.warm + this.#waiting - free, this.#targets.minimum - inUse - free, 0);
      if (this.#waiting > 0) want = Math.max(want, this.#waiting);
      const n = Math.min(want, this.#room(all));
      const d = await this.#d();
      const serverId = await this.#server();
      const subnet = await this.#subnet();
      // A stopping agent finishes the port in hand, and makes more only for pods still waiting.
      for (let i = 0; i < n && (!this.#work.stopping || this.#waiting > 0); i++) {
        const port = await d.neutron
          .createPort({
            network_id: subnet.network_id,
            name: ENI_POOL_NAME,
            description: eniPoolDescription(serverId),
            fixed_ips: [{ subnet_id: subnet.id }],
            tags: ["tcnp", ENI_TAG, ENI_POOL_TAG, nodeTag(serverId)],
          })
          .catch((e: unknown) => {
            // A create whose answer is lost may have made a port: look for it (by description) soon.
            this.#recoverAt = 0;
            throw e;
          });
        // The intent, durable: a crash from here on leaves a record that names the port.
        const intent: Allocation = { ...this.#record(port, subnet, serverId, ""), state: "adding", pid: process.pid };
        this.#s.store.put(intent);
        try {
          await d.neutron.setTags("ports", port.id, ["tcnp", ENI_TAG, ENI_POOL_TAG, nodeTag(serverId)]);
          await d.nova.attachInterface(serverId, port.id);
          const nic = await waitForNic(d.kernel, port.mac_address, d.clock, this.#s.cfg.timeouts.nicMs);
          if (nic === undefined) throw new Error(`no NIC with MAC ${port.mac_address} appeared in the VM`);
          this.#s.store.put(this.#record(port, subnet, serverId, nic));
        } catch (e) {
          await destroyPort(d, port.id, serverId).then(
            () => this.#s.store.delete(intent.containerId, intent.ifname),
            (de: unknown) =>
              this.#s.store.put({ ...intent, state: "releasing", error: String(de), updatedAt: this.#now() }),
          );
          throw e;
        }
      }
      if (n > 0) this.#s.deps.log.info("eni pool filled", { added: n, waiting: this.#waiting });
      this.#events?.cloudCall("fill", true);
      this.#backoff.ok();
    } catch (e) {
      this.#events?.cloudCall("fill", false);
      this.#failed(e);
    }
  }

  #record(port: Port, subnet: Subnet, serverId: string, nic: string): Allocation {
    const now = this.#now();
    const ip = port.fixed_ips.find((f) => f.subnet_id === subnet.id)?.ip_address ?? port.fixed_ips[0]!.ip_address;
    return {
      ...poolKey(ip),
      mode: "eni",
      state: "pool",
      labelled: "pool",
      serverId,
      networkId: port.network_id,
      portId: port.id,
      subnetId: subnet.id,
      mac: port.mac_address.toLowerCase(),
      hostIfname: nic,
      ip,
      ...subnetFields(subnet),
      createdAt: now,
      updatedAt: now,
    };
  }

  async #subnet(): Promise<Subnet> {
    for (const net of this.#s.cfg.networks) {
      const subs = await candidateSubnets(this.#s.clients.neutron, this.#s.cfg, net);
      if (subs[0] !== undefined) return subs[0];
    }
    throw new CniError(CniCode.AddressExhausted, "No IPv4 subnet to pool eni ports from");
  }

  #failed(e: unknown): void {
    const ms = this.#backoff.failed(e, this.#now());
    this.#s.deps.log.warn("eni pool cloud work failed; backing off", { ms, error: this.#backoff.error });
  }

  kick(): void {
    // After the current task: the pod whose take kicked it finishes its kernel work first (the
    // upkeep's store reads would otherwise run between that pod's netlink requests).
    setImmediate(() => void this.maintain());
  }

  maintain(): Promise<void> {
    return this.#work.maintain();
  }

  /** For a clean stop (see PoolWork). */
  quiesce(): Promise<void> {
    return this.#work.quiesce();
  }

  async #maintain(): Promise<void> {
    const now = this.#now();
    const serverId = await this.#server().catch(() => undefined);
    // Due cooling ports come back to the pool; surplus is marked for release. No cloud call; under
    // the node lock too, as a plugin process may be releasing the same due port (see pool.ts).
    await this.#s.locked(async () =>
      this.#recs.withLock("records", async () => {
        const held = new Set(
          this.#records()
            .filter((a) => a.state === "active")
            .map((a) => a.portId),
        );
        for (const a of this.#records()) {
          const due = a.state === "cooling" && (a.coolUntil ?? 0) <= now;
          if (due && a.detached === true) {
            // cooled detached (a DEL without the agent): it has no NIC here to pool; deleted below
            this.#s.store.put({ ...a, state: "releasing", updatedAt: now });
          } else if (due && a.ip !== undefined && !held.has(a.portId)) {
            const p: Allocation = { ...a, ...poolKey(a.ip), state: "pool", updatedAt: now };
            delete p.coolUntil;
            delete p.heldBy;
            this.#s.store.put(p);
            this.#s.store.delete(a.containerId, a.ifname);
          }
        }
        const free = this.#free();
        const inUse = this.#records().filter((a) => a.state === "active").length;
        const out = free.slice(Math.max(this.#targets.warm, this.#targets.minimum - inUse));
        for (const a of out) this.#s.store.put({ ...a, state: "releasing", updatedAt: now });
        return out;
      }),
    );
    if (this.#backoff.active(now) || serverId === undefined) return;
    try {
      const d = await this.#d();
      // Surplus and interrupted releases: detach and delete.
      // Surplus and pending releases (also a DEL's search for a port, queued while the cloud failed).
      // Interrupted fills (no fill running now, so an "adding" pool record is a dead one's).
      if (!this.#work.filling) {
        for (const a of this.#records().filter((r) => r.state === "adding" && r.containerId.startsWith("pool-")))
          await this.#s.release(a);
        if (this.#now() >= this.#recoverAt) {
          await this.recover();
          this.#recoverAt = this.#now() + 30_000;
        }
      }
      for (const a of this.#records().filter((r) => r.state === "releasing")) await this.#s.release(a);
      await this.#relabel(d, serverId);
      const all = this.#records();
      const free = this.#free().length;
      const inUse = all.filter((a) => a.state === "active").length;
      if ((free < this.#targets.warm || inUse + free < this.#targets.minimum) && this.#room(all) > 0)
        await this.#work.fill();
      else this.#backoff.ok();
    } catch (e) {
      this.#failed(e);
    }
  }

  // Off the pods' path: a taken port's tags say whose it is (DEL and GC find it by them even
  // without a record); a pool port's say it is the pool's. `labelled` is what the tags say now.
  async #relabel(d: EniDeps, serverId: string): Promise<void> {
    for (const a of this.#records()) {
      if (a.portId === undefined || (a.state !== "active" && a.state !== "pool") || a.labelled === a.state) continue;
      const want =
        a.state === "active"
          ? ["tcnp", ENI_TAG, containerTag(a.containerId), ifnameTag(a.ifname), nodeTag(serverId)]
          : ["tcnp", ENI_TAG, ENI_POOL_TAG, nodeTag(serverId)];
      try {
        await d.neutron.setTags("ports", a.portId, want);
      } catch (e) {
        if (!isOpenStackError(e, "PortNotFound")) throw e;
      }
      await this.#recs.withLock("records", async () => {
        const cur = this.#s.store.get(a.containerId, a.ifname);
        if (cur !== undefined && cur.portId === a.portId && cur.state === a.state)
          this.#s.store.put({ ...cur, labelled: a.state as "active" | "pool" });
      });
    }
  }

  /** At start: pool ports of this server that no record knows are adopted (attached, NIC here) or removed. */
  async recover(): Promise<number> {
    const d = await this.#d();
    const serverId = await this.#server();
    // By tag, and by description: a port whose create answer was lost has no tags yet.
    const lists = await Promise.all([
      d.neutron.listPorts({ tags: `${ENI_POOL_TAG},${nodeTag(serverId)}` }),
      d.neutron.listPorts({ description: eniPoolDescription(serverId) }),
    ]);
    const ports = [...new Map(lists.flat().map((p) => [p.id, p])).values()];
    const known = new Set(this.#s.store.list().map((a) => a.portId));
    const links = await d.kernel.listLinks(HOST);
    let adopted = 0;
    for (const p of ports) {
      if (known.has(p.id) || !this.#s.cfg.networks.includes(p.network_id)) continue;
      const nic = links.find((l) => l.mac === p.mac_address.toLowerCase() && l.master === undefined);
      const subnet = await this.#subnet();
      if (p.device_id === serverId && nic !== undefined) {
        this.#s.store.put(this.#record(p, subnet, serverId, nic.name));
        adopted++;
      } else await destroyPort(d, p.id, serverId);
    }
    this.#recoverAt = this.#now() + 30_000;
    return adopted;
  }
}
