// A node for the ledger's model-based and crash-point tests, without root and without real time:
// the embedded cloud in process (its delays on a fake clock), a fake kernel whose NICs come and go
// with Nova's attaches, the ledger's journal in memory, and "processes" (the node agent, or a plugin
// process serving one request) that can be killed at any I/O they make — before it, or after it
// took effect with its answer lost — or lose the power (the journal keeps what was made durable).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Clock } from "../../src/base/clock.js";
import { Emulator } from "../../src/cloud/emulator.js";
import { applySeed } from "../../src/cloud/seed.js";
import { parseNetConf, type NetConf } from "../../src/cni/netconf.js";
import type { CniResult } from "../../src/cni/result.js";
import { createIpam } from "../../src/ipam/plugin.js";
import { Ledger, type Journal } from "../../src/ipam/ledger/ledger.js";
import { keyOf, type Rec } from "../../src/ipam/ledger/records.js";
import { NodeCache } from "../../src/ipam/node-cache.js";
import { OneShotWriter, ResidentWriter, type LedgerWriter } from "../../src/ipam/node.js";
import type { OpenLedger } from "../../src/ipam/ledger-files.js";
import type { IpamDeps } from "../../src/ipam/session.js";
import { FakeKernel } from "../../src/kernel/fake-kernel.js";
import { HOST, type Kernel } from "../../src/kernel/types.js";
import { createLogger, memorySink, type Logger } from "../../src/log/logger.js";
import { fileSources } from "../../src/openstack/credentials.js";
import type { HttpFetch } from "../../src/openstack/http.js";
import { MemoryTokenStore } from "../../src/openstack/token-cache.js";
import { MemoryJournal } from "../../src/state/journal.js";
import { MemoryLock, type IntentLocks } from "../../src/state/lock.js";
import { ENI_NET, MIX_NET, nodeSeed, testOpenstackConf, VM1, VM1_MAC } from "./fake-node.js";

/** Time that moves only when the test says: sleeps resolve when the clock reaches them. */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers: Array<{ at: number; seq: number; owner: number; fire: () => void }> = [];
  readonly #dead = new Set<number>();
  constructor(start = 1_800_000_000_000) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  sleep(ms: number, owner = 0): Promise<void> {
    // A dead process's sleeps never end.
    if (this.#dead.has(owner)) return new Promise(() => {});
    return new Promise((fire) => this.#timers.push({ at: this.#now + Math.max(0, ms), seq: this.#seq++, owner, fire }));
  }
  /** A clock whose sleeps belong to `owner` (dropped, never firing, when that process dies). */
  as(owner: number): Clock {
    return { now: () => this.now(), sleep: (ms) => this.sleep(ms, owner) };
  }
  drop(owner: number): void {
    this.#dead.add(owner);
    for (let i = this.#timers.length - 1; i >= 0; i--) if (this.#timers[i]!.owner === owner) this.#timers.splice(i, 1);
  }
  nextAt(): number | undefined {
    return this.#timers.length === 0 ? undefined : Math.min(...this.#timers.map((t) => t.at));
  }
  /** Move to `t` (never back), firing every sleep due by then in order. */
  advanceTo(t: number): void {
    this.#now = Math.max(this.#now, t);
    const due = this.#timers.filter((x) => x.at <= this.#now).sort((a, b) => a.at - b.at || a.seq - b.seq);
    for (const x of due) this.#timers.splice(this.#timers.indexOf(x), 1);
    for (const x of due) x.fire();
  }
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }
}

/** What a killed process meets at its next I/O. */
export class Crash extends Error {
  constructor() {
    super("killed");
    this.name = "Crash";
  }
}

/** When a process dies: at its `at`-th I/O (journal commit or cloud request), before it or after it took effect. */
export interface KillPoint {
  at: number;
  after: boolean;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** One process of the node: its I/O counted, killable at a chosen I/O. */
export class Proc {
  static #ids = 1;
  readonly id = Proc.#ids++;
  dead = false;
  io = 0;
  kill: KillPoint | undefined;
  constructor(readonly node: ModelNode) {}

  /** Around one I/O: dies before or after it when its kill point is reached. */
  async step<T>(f: () => T | Promise<T>): Promise<T> {
    this.#check(false);
    const n = ++this.io;
    if (this.kill !== undefined && n === this.kill.at && !this.kill.after) this.die();
    const out = await f();
    if (this.kill !== undefined && n === this.kill.at && this.kill.after) this.die();
    this.#check(true);
    return out;
  }
  stepSync<T>(f: () => T): T {
    this.#check(false);
    const n = ++this.io;
    if (this.kill !== undefined && n === this.kill.at && !this.kill.after) this.die();
    const out = f();
    if (this.kill !== undefined && n === this.kill.at && this.kill.after) this.die();
    return out;
  }
  #check(after: boolean): void {
    if (this.dead) throw new Crash();
    void after;
  }
  die(): never {
    this.dead = true;
    this.node.clock.drop(this.id);
    throw new Crash();
  }
}

export interface ModelOptions {
  /** eni ports per VM (PCI slots). */
  slots?: number;
  /** The mix and eni subnets' allocation pools (small ones make Neutron reuse addresses soon). */
  mixPool?: { start: string; end: string };
  eniPool?: { start: string; end: string };
  coolDownSeconds?: number;
  pool?: { warmTarget?: number; minimumTarget?: number; maximum?: number };
  seed?: number;
}

export class ModelNode {
  readonly clock = new FakeClock();
  readonly em: Emulator;
  readonly kernel = new FakeKernel();
  readonly journal = new MemoryJournal<Rec>(keyOf);
  readonly stateDir: string;
  readonly lines: string[];
  readonly #log: Logger;
  #nic = 4;
  agent: { proc: Proc; writer: ResidentWriter } | undefined;

  private constructor(readonly o: ModelOptions) {
    this.em = new Emulator({
      config: { detachDelayMs: 50, nicAppearDelayMs: 20, pciSlots: o.slots ?? 28, seed: o.seed ?? 1 },
      now: () => this.clock.now(),
      delay: (ms) => this.clock.sleep(ms),
    });
    const seed = nodeSeed();
    if (o.mixPool !== undefined) seed.networks![0]!.subnets![0]!.allocation_pools = [o.mixPool];
    if (o.eniPool !== undefined) seed.networks![1]!.subnets![0]!.allocation_pools = [o.eniPool];
    applySeed(this.em, seed);
    this.em.hooks = {
      attach: async (_s, port) =>
        this.kernel.addDevice(HOST, { name: `ens${this.#nic++}`, mac: port.mac_address, mtu: 1450 }),
      detach: async (_s, port) => {
        const l = (await this.kernel.listLinks(HOST)).find((x) => x.mac === port.mac_address);
        if (l !== undefined) await this.kernel.deleteLink(HOST, l.name);
      },
    };
    this.stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-model-"));
    const sink = memorySink();
    this.lines = sink.lines;
    this.#log = createLogger(sink, { level: "warn" });
  }

  static async create(o: ModelOptions = {}): Promise<ModelNode> {
    const n = new ModelNode(o);
    const k = n.kernel;
    k.addDevice(HOST, { name: "eth0", mac: VM1_MAC, mtu: 1450 });
    await k.setLink(HOST, "eth0", { up: true });
    await k.addAddress(HOST, { cidr: "10.10.10.11/24", dev: "eth0" });
    k.addDevice(HOST, { name: "eth1", mac: "fa:16:3e:00:02:01", mtu: 1450 });
    await k.setLink(HOST, "eth1", { up: true });
    await k.addAddress(HOST, { cidr: "10.10.20.11/24", dev: "eth1" });
    return n;
  }

  get coolDownMs(): number {
    return (this.o.coolDownSeconds ?? 30) * 1000;
  }

  cleanup(): void {
    fs.rmSync(this.stateDir, { recursive: true, force: true });
  }

  conf(
    mode: "mix" | "eni",
    over: { coolDownSeconds?: number; pool?: ModelOptions["pool"]; securityGroups?: string[] } = {},
  ): NetConf {
    const ipam = {
      type: "tcnp-ipam",
      openstackConf: testOpenstackConf(),
      neutronConf: {
        networks: [mode === "mix" ? MIX_NET : ENI_NET],
        mode,
        ...(over.securityGroups === undefined ? {} : { securityGroups: over.securityGroups }),
      },
      serverId: VM1,
      metadataUrl: null,
      stateDir: this.stateDir,
      coolDownSeconds: over.coolDownSeconds ?? this.o.coolDownSeconds ?? 30,
      pool: { warmTarget: 2, maximum: 20, ...this.o.pool, ...over.pool },
      timeouts: { nic: 5, detach: 5 },
    };
    return parseNetConf(
      JSON.stringify({ cniVersion: "1.1.0", name: `model-${mode}`, type: "veth-route", ipam }),
      "ADD",
    );
  }

  /** The ledger's records now (what a new process would load after a crash: every commit kept). */
  records(): Rec[] {
    return this.journal.records();
  }

  /** A power loss: the journal keeps its durable entries and a random number of those after them. */
  powerLoss(random: () => number): void {
    const min = this.journal.durablePrefix();
    const keep = min + Math.floor(random() * (this.journal.entries.length - min + 1));
    this.journal.truncate(keep);
  }

  // The ledger a process opens: the journal as committed so far, each commit one I/O of that process.
  #open(p: Proc): (stateDir: string) => OpenLedger {
    const journal = this.journal;
    const j: Journal = { commit: (ops, durable) => p.stepSync(() => journal.commit(ops, durable)) };
    return () => {
      const ledger = new Ledger(j, journal.records());
      return { ledger, close: () => {}, reopen: (elsewhere) => ledger.reload(j, journal.records(), elsewhere) };
    };
  }

  /** Intent locks as the kernel keeps them: a dead process holds none. */
  readonly #intentHolders = new Map<string, Proc>();
  intentLocks(p: Proc): IntentLocks {
    const holder = (k: string): Proc | undefined => {
      const h = this.#intentHolders.get(k);
      return h === undefined || h.dead ? undefined : h;
    };
    return {
      tryHold: (k) => {
        if (holder(k) !== undefined) return undefined;
        this.#intentHolders.set(k, p);
        return () => {
          if (this.#intentHolders.get(k) === p) this.#intentHolders.delete(k);
        };
      },
      heldElsewhere: (k) => {
        const h = holder(k);
        return h !== undefined && h !== p;
      },
    };
  }

  deps(p: Proc, writer?: LedgerWriter): IpamDeps {
    const fetch: HttpFetch = (req) => p.step(() => this.em.fetch({ ...req, remoteAddress: "10.10.10.11" }));
    const kernel = this.kernel as Kernel;
    const env = { TCNP_STATE_DIR: this.stateDir };
    const tokens = new MemoryTokenStore();
    let seq = 0;
    const d: IpamDeps = {
      kernel: async () => kernel,
      log: this.#log,
      clock: this.clock.as(p.id),
      env,
      httpFetch: () => fetch,
      sources: fileSources(env),
      readFile: () => undefined,
      lockFor: () => new MemoryLock(),
      tokensFor: () => tokens,
      cacheFor: (dir) => new NodeCache(dir),
      random: () => (seq = (seq * 1103515245 + 12345) % 2147483648) / 2147483648,
      writer: writer ?? new OneShotWriter(new MemoryLock(), this.intentLocks(p), { open: this.#open(p) }),
    };
    return d;
  }

  /** Start the node agent (a new process): its writer holds the ledger as the journal has it. */
  startAgent(): Proc {
    const proc = new Proc(this);
    const open = this.#open(proc);
    const late: { writer?: ResidentWriter } = {};
    const d = this.deps(proc, { withPool: (s, fn) => late.writer!.withPool(s, fn) });
    const writer = (late.writer = new ResidentWriter(d, this.intentLocks(proc), { open, defer: () => {} }));
    this.agent = { proc, writer };
    return proc;
  }

  /** The node agent dies (kill -9, or the power). */
  killAgent(): void {
    if (this.agent === undefined) return;
    this.agent.proc.dead = true;
    this.clock.drop(this.agent.proc.id);
    this.agent = undefined;
  }

  /** The process serving the next request: the agent if it runs, else a new plugin process. */
  proc(): { proc: Proc; deps: IpamDeps } {
    if (this.agent !== undefined)
      return {
        proc: this.agent.proc,
        deps: this.deps(this.agent.proc, { withPool: (s, fn) => this.agent!.writer.withPool(s, fn) }),
      };
    const proc = new Proc(this);
    return { proc, deps: this.deps(proc) };
  }

  /** A CNI verb of tcnp-ipam, as a runtime runs it. */
  ipam(
    deps: IpamDeps,
    verb: "ADD" | "DEL" | "GC",
    mode: "mix" | "eni",
    o: {
      containerId?: string;
      prev?: CniResult;
      valid?: Array<{ containerID: string; ifname: string }>;
      conf?: NetConf;
    } = {},
  ): Promise<CniResult | void> {
    const base = o.conf ?? this.conf(mode);
    const conf: NetConf = {
      ...base,
      ...(o.prev === undefined ? {} : { prevResult: o.prev }),
      ...(o.valid === undefined ? {} : { validAttachments: o.valid }),
    } as NetConf;
    const ctx = {
      args: { command: verb, containerId: o.containerId ?? "", netns: "", ifname: "eth0", args: new Map(), path: [] },
      conf,
    };
    const p = createIpam(deps);
    if (verb === "ADD") return p.add(ctx as never);
    if (verb === "DEL") return p.del(ctx as never);
    return p.gc!(ctx as never);
  }

  /**
   * Run `work` to its end: microtasks and immediates between each step, and the clock moved to the
   * next sleep whenever nothing else can run (time passes only while the work waits for it).
   */
  async drive<T>(
    work: Promise<T>,
    o: { proc?: Proc; limitMs?: number } = {},
  ): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
    let out: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
    work.then(
      (value) => (out = { ok: true, value }),
      (error: unknown) => (out = { ok: false, error }),
    );
    const end = this.clock.now() + (o.limitMs ?? 24 * 3600_000);
    for (let idle = 0; out === undefined;) {
      await turn();
      if (out !== undefined) break;
      const next = this.clock.nextAt();
      if (next !== undefined && next <= end) {
        this.clock.advanceTo(next);
        idle = 0;
      } else if (++idle > 20) {
        // A killed process's work may wait forever (its sleeps never end): it died.
        if (o.proc?.dead === true) return { ok: false, error: new Crash() };
        throw new Error("the work is stuck: nothing runs and nothing sleeps");
      }
    }
    return out;
  }

  /** Let the cloud's own delayed work (detaches, NICs appearing) finish. */
  async settleCloud(): Promise<void> {
    for (let i = 0; i < 100 && this.em.pending.size > 0; i++)
      await this.drive(Promise.race([...this.em.pending, turn()]));
  }

  /** The VM's mix port's addresses, its own eni ports' addresses (pods' and pools'), pool tags. */
  cloud(): { mixIps: string[]; eniPorts: Array<{ id: string; ip: string; attached: boolean }>; poolTags: string[] } {
    const ports = Object.values(this.em.world.ports);
    const vmMix = ports.find((p) => p.device_id === VM1 && p.network_id === MIX_NET && p.mac_address === VM1_MAC)!;
    const eni = ports.filter(
      (p) =>
        p.network_id === ENI_NET &&
        p.mac_address !== "fa:16:3e:00:02:01" &&
        p.device_owner !== "network:router_interface",
    );
    return {
      mixIps: vmMix.fixed_ips.map((f) => f.ip_address).sort(),
      eniPorts: eni.map((p) => ({ id: p.id, ip: p.fixed_ips[0]?.ip_address ?? "", attached: p.device_id === VM1 })),
      poolTags: vmMix.tags.filter((t) => t.startsWith("tcnp-pool=")),
    };
  }
}
