// The address ledger against a model of the node: random sequences of pod ADDs and DELs (through
// the node agent or a plugin process without it), the agent's upkeep, GC, time passing, cloud
// faults, processes killed at any I/O (before it or after it took effect) and power losses — with
// the embedded cloud in process and a fake clock, no root, no real sleeps. After every step no
// address is held by two live pods, every live pod's address is on its port and in the ledger,
// and no address has two records; at the end, draining the node leaves nothing in the cloud or the
// ledger. TCNP_MODEL_SEED replays a run; TCNP_MODEL_STEPS sizes it (default 10,000 steps in all).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { FaultRule } from "../../src/cloud/emulator.js";
import { ModelNode } from "../helpers/model-node.js";
import { Runtime, type Kill } from "../helpers/node-runtime.js";

const STEPS = Number(process.env["TCNP_MODEL_STEPS"] ?? 10_000);
const PER_SEQUENCE = 60;
const SEED = Number(process.env["TCNP_MODEL_SEED"] ?? Date.now() % 1_000_000);

function rng(seed: number): () => number {
  let s = seed % 2147483648;
  return () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
}

const FAULTS: FaultRule[] = [
  { kind: "error", service: "network", method: "PUT", status: 500, remaining: 1 },
  { kind: "error", service: "network", method: "POST", status: 503, remaining: 1 },
  { kind: "drop", service: "network", method: "PUT", remaining: 1 },
  { kind: "drop-after-commit", service: "network", method: "PUT", remaining: 1 },
  { kind: "drop-after-commit", service: "network", method: "POST", path: "^/v2.0/ports$", remaining: 1 },
  { kind: "stale-revision", service: "network", method: "PUT", remaining: 2 },
  { kind: "error", service: "compute", method: "POST", status: 500, remaining: 1 },
  { kind: "drop-after-commit", service: "compute", method: "POST", remaining: 1 },
  { kind: "error", service: "compute", method: "DELETE", status: 500, remaining: 1 },
  { kind: "error", service: "network", method: "DELETE", status: 500, remaining: 1 },
  { kind: "error", service: "network", method: "GET", status: 500, remaining: 2 },
];

// One random sequence: the runtime's verbs, the agent's upkeep, GC, time, agents coming and
// going, power losses; before each verb maybe a cloud fault, and maybe a kill of its process.
class Sequence {
  readonly r: Runtime;
  readonly stats = { adds: 0, addsOk: 0, dels: 0, kills: 0, powerLosses: 0, upkeeps: 0, gcs: 0, faults: 0 };
  constructor(
    readonly n: ModelNode,
    readonly rand: () => number,
    label: string,
  ) {
    this.r = new Runtime(n, label);
  }

  #pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rand() * xs.length)]!;
  }
  #chaos(): { kill?: Kill } {
    if (this.rand() < 0.3) {
      this.stats.faults++;
      this.n.em.addFault({ ...this.#pick(FAULTS) });
    }
    if (this.rand() > 0.15) return {};
    this.stats.kills++;
    return { kill: { in: 1 + Math.floor(this.rand() * 10), after: this.rand() < 0.5 } };
  }

  async step(): Promise<void> {
    const r = this.rand();
    const pods = [...this.r.pods.values()];
    const stale = pods.filter((p) => !p.live);
    if (stale.length > 0 && r < 0.3) {
      this.stats.dels++;
      await this.r.del(this.#pick(stale), this.#chaos());
    } else if (r < 0.55 || pods.length === 0) {
      this.stats.adds++;
      const p = await this.r.add(this.rand() < 0.6 ? "mix" : "eni", this.#chaos());
      if (p.live) this.stats.addsOk++;
    } else if (r < 0.75) {
      this.stats.dels++;
      await this.r.del(this.#pick(pods), this.#chaos());
    } else if (r < 0.83) {
      this.stats.upkeeps++;
      await this.r.upkeep(this.#chaos());
    } else if (r < 0.86) {
      this.stats.gcs++;
      await this.r.gc(this.rand() < 0.5 ? "mix" : "eni", this.#chaos());
    } else if (r < 0.93) this.n.clock.advance(Math.floor(this.rand() * 40_000));
    else if (r < 0.985) {
      if (this.n.agent === undefined) this.n.startAgent();
      else this.n.killAgent();
    } else {
      // The power goes: the agent and every pod with it; the runtime DELs them after the reboot.
      this.stats.powerLosses++;
      this.n.killAgent();
      this.n.powerLoss(this.rand);
      for (const p of this.r.pods.values()) p.live = false;
    }
    this.r.check();
  }
}

describe("the address ledger against a model of the node (random operations, faults, kills, power losses)", () => {
  it(
    `${STEPS} random steps in sequences of ${PER_SEQUENCE}, each drained at its end (seed ${SEED})`,
    { timeout: 300_000 },
    async () => {
      const rand = rng(SEED);
      const total = {
        steps: 0,
        sequences: 0,
        adds: 0,
        addsOk: 0,
        dels: 0,
        kills: 0,
        powerLosses: 0,
        upkeeps: 0,
        gcs: 0,
        faults: 0,
      };
      while (total.steps < STEPS) {
        const seqSeed = Math.floor(rand() * 1_000_000_000);
        const small = rand() < 0.5;
        const n = await ModelNode.create({
          seed: seqSeed,
          // small subnets: Neutron hands released addresses out again soon
          ...(small
            ? {
                mixPool: { start: "10.10.10.11", end: "10.10.10.24" },
                eniPool: { start: "10.10.20.11", end: "10.10.20.22" },
              }
            : {}),
          coolDownSeconds: [0, 5, 30][Math.floor(rand() * 3)]!,
          slots: 6,
        });
        const s = new Sequence(
          n,
          rng(seqSeed),
          `sequence ${total.sequences} (replay: TCNP_MODEL_SEED=${SEED}, sequence seed ${seqSeed})`,
        );
        try {
          if (rand() < 0.5) n.startAgent();
          for (let i = 0; i < PER_SEQUENCE && total.steps < STEPS; i++, total.steps++) await s.step();
          await s.r.drain();
        } finally {
          n.cleanup();
        }
        total.sequences++;
        for (const k of Object.keys(s.stats) as Array<keyof Sequence["stats"]>) total[k] += s.stats[k];
      }
      console.log(`ledger model: seed ${SEED}: ${JSON.stringify(total)}`);
      assert.ok(total.addsOk > total.adds / 3, "most ADDs succeed: the model exercises the pools, not only failures");
    },
  );
});
