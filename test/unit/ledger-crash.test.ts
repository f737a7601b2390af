// Recovery after a crash between any two durable steps: each operation below is run once to count
// its process's I/Os (journal commits and cloud requests), then again once per I/O with the process
// killed right before it and right after it took effect (its answer lost). After each kill no live
// pod has lost its address and no address has two records; then the runtime's DELs, GC and a new
// agent's upkeep must leave nothing in the cloud or the ledger. Fake clock, no root.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ModelNode, type ModelOptions } from "../helpers/model-node.js";
import { Runtime, type Kill } from "../helpers/node-runtime.js";

interface Scenario {
  name: string;
  opts?: ModelOptions;
  /** The state before the operation. */
  setup(r: Runtime): Promise<unknown>;
  /** The operation, its serving process killed as `kill` says. */
  run(r: Runtime, kill: Kill | undefined, ctx: unknown): Promise<void>;
}

const live = async (r: Runtime, mode: "mix" | "eni") => {
  const p = await r.add(mode);
  assert.ok(p.live, "setup: a pod starts");
  return p;
};

const SCENARIOS: Scenario[] = [
  {
    name: "mix ADD without the agent (the pod's address made on demand)",
    setup: (r) => live(r, "mix"),
    run: async (r, kill) => void (await r.add("mix", { kill })),
  },
  {
    name: "mix DEL without the agent, no cool-down (the address back to Neutron)",
    opts: { coolDownSeconds: 0 },
    setup: (r) => live(r, "mix"),
    run: async (r, kill, pod) => void (await r.del(pod as never, { kill })),
  },
  {
    name: "mix DEL without the agent that gives a due cooling address back",
    opts: { coolDownSeconds: 5 },
    setup: async (r) => {
      const a = await live(r, "mix");
      await r.delUntilGone(a);
      r.n.clock.advance(6000);
      return live(r, "mix");
    },
    run: async (r, kill, pod) => void (await r.del(pod as never, { kill })),
  },
  {
    name: "mix: the agent fills its pool (one batch)",
    setup: async (r) => r.n.startAgent(),
    run: (r, kill) => r.upkeep({ kill }),
  },
  {
    name: "mix: the agent's upkeep after pods left (cooled back to the pool, surplus released, tags)",
    opts: { coolDownSeconds: 5 },
    setup: async (r) => {
      r.n.startAgent();
      await r.upkeep();
      const pods = [await live(r, "mix"), await live(r, "mix"), await live(r, "mix")];
      for (const p of pods) await r.delUntilGone(p);
      r.n.clock.advance(6000);
    },
    run: (r, kill) => r.upkeep({ kill }),
  },
  {
    name: "mix ADD through the agent from an empty pool (a batch for the waiting pod)",
    opts: { pool: { warmTarget: 0 } },
    setup: async (r) => r.n.startAgent(),
    run: async (r, kill) => void (await r.add("mix", { kill })),
  },
  {
    name: "eni ADD without the agent (create, tag, attach, the NIC)",
    setup: (r) => live(r, "eni"),
    run: async (r, kill) => void (await r.add("eni", { kill })),
  },
  {
    name: "eni DEL without the agent, with a cool-down (detached, kept in Neutron)",
    opts: { coolDownSeconds: 5 },
    setup: (r) => live(r, "eni"),
    run: async (r, kill, pod) => void (await r.del(pod as never, { kill })),
  },
  {
    name: "eni DEL without the agent, no cool-down (detached and deleted)",
    opts: { coolDownSeconds: 0 },
    setup: (r) => live(r, "eni"),
    run: async (r, kill, pod) => void (await r.del(pod as never, { kill })),
  },
  {
    name: "eni: the agent grows its pool (ports created, tagged, attached)",
    setup: async (r) => r.n.startAgent(),
    run: (r, kill) => r.upkeep({ kill }),
  },
  {
    name: "eni: the agent's upkeep after pods left (cooled back, surplus detached and deleted, labels)",
    opts: { coolDownSeconds: 5 },
    setup: async (r) => {
      r.n.startAgent();
      await r.upkeep();
      const pods = [await live(r, "eni"), await live(r, "eni"), await live(r, "eni")];
      for (const p of pods) await r.delUntilGone(p);
      r.n.clock.advance(6000);
    },
    run: (r, kill) => r.upkeep({ kill }),
  },
  {
    name: "GC without the agent of pods that are gone (both modes' records)",
    opts: { coolDownSeconds: 0 },
    setup: async (r) => {
      const a = await live(r, "eni");
      r.pods.delete(a.id); // the runtime forgot it: GC's valid set leaves it out
      return live(r, "eni");
    },
    run: (r, kill) => r.gc("eni", { kill }),
  },
];

describe("recovery after a crash at every I/O of an operation", () => {
  for (const sc of SCENARIOS) {
    it(sc.name, async () => {
      const dry = new Runtime(await ModelNode.create(sc.opts), `${sc.name}, no kill`);
      await sc.run(dry, undefined, await sc.setup(dry));
      dry.check();
      const ios = dry.lastIo;
      await dry.drain();
      dry.n.cleanup();
      assert.ok(ios > 0, "the operation does I/O");
      for (let at = 1; at <= ios; at++)
        for (const after of [false, true]) {
          const r = new Runtime(
            await ModelNode.create(sc.opts),
            `${sc.name}, killed ${after ? "after" : "before"} I/O ${at} of ${ios}`,
          );
          try {
            const ctx = await sc.setup(r);
            await sc.run(r, { in: at, after }, ctx);
            r.check();
            await r.drain();
          } finally {
            r.n.cleanup();
          }
        }
    });
  }
});
