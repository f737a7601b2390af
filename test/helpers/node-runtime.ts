// A container runtime's side of a model node (model-node.ts): pods added and deleted through
// tcnp-ipam as a runtime does it (a failed or killed ADD is followed by DELs until one succeeds),
// the agent's upkeep and GC, and the checks that must hold after every step and after a drain.
import assert from "node:assert/strict";
import type { CniResult } from "../../src/cni/result.js";
import { holds, keyOf, ownerKey } from "../../src/ipam/ledger/records.js";
import { Crash, type ModelNode, type Proc } from "./model-node.js";

export interface Pod {
  id: string;
  mode: "mix" | "eni";
  ip?: string;
  result?: CniResult;
  /** ADD succeeded and no DEL has started: its address must be on its port. */
  live: boolean;
}

/** Kill the serving process at its `in`-th I/O from now, before it or after it took effect. */
export interface Kill {
  in: number;
  after: boolean;
}

export class Runtime {
  readonly pods = new Map<string, Pod>();
  /** Addresses live pods gave back: no new pod may get one before its cool-down ends. */
  readonly #coolingUntil = new Map<string, number>();
  #seq = 0;
  #io0 = 0;
  /** How many I/Os the process that served the last verb made for it. */
  lastIo = 0;

  constructor(
    readonly n: ModelNode,
    readonly label: string,
  ) {}

  #arm(p: Proc, kill: Kill | undefined): void {
    this.#io0 = p.io;
    if (kill !== undefined) p.kill = { at: p.io + kill.in, after: kill.after };
  }
  #disarm(p: Proc): void {
    this.lastIo = p.io - this.#io0;
    p.kill = undefined;
    if (p.dead && this.n.agent?.proc === p) this.n.killAgent();
  }

  async add(mode: "mix" | "eni", o: { kill?: Kill | undefined } = {}): Promise<Pod> {
    const pod: Pod = { id: `p${++this.#seq}`, mode, live: false };
    this.pods.set(pod.id, pod);
    const { proc, deps } = this.n.proc();
    this.#arm(proc, o.kill);
    const r = await this.n.drive(this.n.ipam(deps, "ADD", mode, { containerId: pod.id }), { proc });
    this.#disarm(proc);
    if (r.ok && !proc.dead) {
      pod.result = r.value as CniResult;
      pod.ip = pod.result.ips[0]!.address.split("/")[0]!;
      pod.live = true;
      const until = this.#coolingUntil.get(pod.ip) ?? 0;
      assert.ok(
        this.n.clock.now() >= until,
        `${this.label}: ${pod.id} got ${pod.ip} ${until - this.n.clock.now()} ms before the end of its cool-down`,
      );
    } else if (!r.ok) this.#noBug(r.error, "ADD");
    return pod;
  }

  /** DEL once; true when it succeeded (the runtime forgets the pod). */
  async del(pod: Pod, o: { kill?: Kill | undefined } = {}): Promise<boolean> {
    const released = pod.live ? { ip: pod.ip!, at: this.n.clock.now() } : undefined;
    pod.live = false;
    const { proc, deps } = this.n.proc();
    this.#arm(proc, o.kill);
    const r = await this.n.drive(
      this.n.ipam(deps, "DEL", pod.mode, {
        containerId: pod.id,
        ...(pod.result === undefined ? {} : { prev: pod.result }),
      }),
      { proc },
    );
    this.#disarm(proc);
    if (r.ok && !proc.dead) {
      this.pods.delete(pod.id);
      if (released !== undefined && this.n.coolDownMs > 0)
        this.#coolingUntil.set(released.ip, released.at + this.n.coolDownMs);
      return true;
    }
    if (!r.ok) this.#noBug(r.error, "DEL");
    return false;
  }

  /** DEL until it succeeds, as a runtime does. */
  async delUntilGone(pod: Pod): Promise<void> {
    for (let i = 0; !(await this.del(pod)); i++) assert.ok(i < 20, `${this.label}: DEL of ${pod.id} never succeeds`);
  }

  // A verb may fail while the cloud does (the runtime retries), or because its process was killed;
  // never with a bug.
  #noBug(e: unknown, verb: string): void {
    if (e instanceof Crash) return;
    const msg = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : String(e);
    assert.ok(
      !/LedgerError|TypeError|ReferenceError|RangeError/.test(msg),
      `${this.label}: ${verb} failed with a bug: ${msg}`,
    );
  }

  /** One round of the agent's upkeep of both modes' pools (if an agent runs). */
  async upkeep(o: { kill?: Kill | undefined; conf?: Parameters<ModelNode["conf"]>[1] } = {}): Promise<void> {
    const a = this.n.agent;
    if (a === undefined) return;
    for (const mode of ["mix", "eni"] as const) a.writer.poolFor(this.n.conf(mode, o.conf));
    this.#arm(a.proc, o.kill);
    const r = await this.n.drive(a.writer.maintain(), { proc: a.proc });
    this.#disarm(a.proc);
    if (!r.ok) this.#noBug(r.error, "upkeep");
  }

  async gc(mode: "mix" | "eni", o: { kill?: Kill | undefined } = {}): Promise<void> {
    const valid = [...this.pods.values()].map((p) => ({ containerID: p.id, ifname: "eth0" }));
    const { proc, deps } = this.n.proc();
    this.#arm(proc, o.kill);
    const r = await this.n.drive(this.n.ipam(deps, "GC", mode, { valid }), { proc });
    this.#disarm(proc);
    if (!r.ok) this.#noBug(r.error, "GC");
  }

  /** The invariants that hold after every step. */
  check(): void {
    const live = [...this.pods.values()].filter((p) => p.live);
    const ips = live.map((p) => p.ip!);
    assert.equal(new Set(ips).size, ips.length, `${this.label}: two live pods share an address: ${ips.join(" ")}`);
    const cloud = this.n.cloud();
    const recs = this.n.records();
    for (const p of live) {
      if (p.mode === "mix")
        assert.ok(cloud.mixIps.includes(p.ip!), `${this.label}: live mix pod ${p.id} lost ${p.ip} from the VM's port`);
      else
        assert.ok(
          cloud.eniPorts.some((x) => x.ip === p.ip && x.attached),
          `${this.label}: live eni pod ${p.id}'s port with ${p.ip} is gone or detached`,
        );
      const rec = recs.find((r) => keyOf(r) === ownerKey({ containerId: p.id, ifname: "eth0" }));
      assert.ok(
        rec?.kind === "pod" && rec.ip === p.ip,
        `${this.label}: the ledger has no pod record of ${p.id} with ${p.ip}`,
      );
    }
    const held = recs.filter(holds).map((r) => `${r.portId} ${r.ip}`);
    assert.equal(new Set(held).size, held.length, `${this.label}: an address has two records: ${held.join(", ")}`);
  }

  /** Everything deleted, the cloud healthy, time past every cool-down: nothing is left anywhere. */
  async drain(): Promise<void> {
    this.n.em.faults.length = 0;
    for (const p of [...this.pods.values()]) await this.delUntilGone(p);
    this.n.killAgent();
    for (const mode of ["mix", "eni"] as const) {
      const { proc, deps } = this.n.proc();
      const r = await this.n.drive(this.n.ipam(deps, "GC", mode, { valid: [] }), { proc });
      assert.ok(r.ok, `${this.label}: GC after the DELs: ${r.ok ? "" : String(r.error)}`);
    }
    this.n.clock.advance(3600_000);
    this.n.startAgent();
    for (let round = 0; round < 10; round++) {
      await this.upkeep({ conf: { pool: { warmTarget: 0, minimumTarget: 0 } } });
      this.n.clock.advance(60_000);
    }
    await this.n.settleCloud();
    const cloud = this.n.cloud();
    assert.deepEqual(this.n.records(), [], `${this.label}: the drained ledger holds records`);
    assert.deepEqual(cloud.mixIps, ["10.10.10.11"], `${this.label}: the VM's port holds more than its own address`);
    assert.deepEqual(cloud.eniPorts, [], `${this.label}: eni ports are left in Neutron`);
    assert.deepEqual(cloud.poolTags, [], `${this.label}: pool tags are left on the VM's port`);
  }
}
