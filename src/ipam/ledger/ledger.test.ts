// Every transition of the ledger: what it makes of the records, that it is one journal entry
// (durable where it must outlive a power loss), and that it refuses when its precondition fails.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemoryJournal } from "../../state/journal.js";
import { fromLegacy, parseRec } from "./codec.js";
import { Ledger, LedgerError, type HeldAddress } from "./ledger.js";
import { addressKey, fillKey, keyOf, ownerKey, type Owner, type Rec } from "./records.js";

const A: Owner = { containerId: "c1", ifname: "eth0" };
const B: Owner = { containerId: "c2", ifname: "eth0" };
const at = (ip: string, portId = "vm-port"): HeldAddress => ({
  mode: "mix",
  serverId: "srv",
  networkId: "net",
  portId,
  subnetId: "sub",
  prefix: 24,
  ip,
});
const T = 1_000_000;

function fresh(recs: Rec[] = []): { L: Ledger; j: MemoryJournal<Rec> } {
  const j = new MemoryJournal<Rec>(keyOf, recs);
  const L = new Ledger(j, j.records());
  j.entries.length = 0;
  return { L, j };
}
// A ledger holding `ip` in the pool (adopted), and its journal from then on.
function withPool(...ips: string[]): { L: Ledger; j: MemoryJournal<Rec> } {
  const f = fresh();
  for (const ip of ips) f.L.adopt(at(ip), T);
  f.j.entries.length = 0;
  return f;
}
const kinds = (L: Ledger): string[] =>
  L.all()
    .map((r) => `${keyOf(r)} ${r.kind}${r.kind === "intent" ? `:${r.op}` : ""}`)
    .sort();
const last = (j: MemoryJournal<Rec>): { n: number; durable: boolean } => ({
  n: j.entries.length,
  durable: j.entries.at(-1)?.durable ?? false,
});

describe("ledger transitions", () => {
  it("beginAdd → addDone: an intent (durable) becomes the pod's record; a second beginAdd is refused", () => {
    const { L, j } = fresh();
    L.beginAdd(A, { mode: "mix", serverId: "srv", networkId: "net", portId: "vm-port", before: ["10.0.0.11"] }, T);
    assert.deepEqual(last(j), { n: 1, durable: true });
    assert.ok(L.claimed(ownerKey(A)), "the work that wrote it is doing it");
    assert.deepEqual(
      L.orphans(() => true),
      [],
    );
    assert.throws(() => L.beginAdd(A, at("x"), T), LedgerError);
    const pod = L.addDone(A, at("10.0.0.5"), T + 1);
    assert.equal(pod.kind, "pod");
    assert.equal(pod.createdAt, T, "created when the ADD began");
    assert.deepEqual(kinds(L), ["pod/c1/eth0 pod"]);
    assert.equal(L.claimed(ownerKey(A)), false);
    assert.throws(() => L.addDone(A, at("10.0.0.5"), T), LedgerError, "no add intent any more");
  });

  it("undo: an add, fill or grow intent goes; a pod record cannot be undone", () => {
    const { L } = fresh();
    L.beginAdd(A, at("x"), T);
    L.undo(ownerKey(A));
    L.beginFill(at("y"), [], T);
    L.undo(fillKey("vm-port"));
    L.beginGrow(at("10.0.0.9", "p9"), T);
    L.undo(addressKey("10.0.0.9"));
    assert.deepEqual(L.all(), []);
    L.beginAdd(A, at("x"), T);
    L.addDone(A, at("10.0.0.5"), T);
    assert.throws(() => L.undo(ownerKey(A)), LedgerError);
  });

  it("take: a free pool address becomes a pod's in one entry (not durable); refused when taken or the pod has one", () => {
    const { L, j } = withPool("10.0.0.5", "10.0.0.6");
    const pod = L.take(A, "10.0.0.5", { hostIfname: "ens4" }, T + 5);
    assert.equal(pod.hostIfname, "ens4");
    assert.equal(pod.createdAt, T + 5, "a pod's age starts at its take (GC's grace period)");
    assert.deepEqual(last(j), { n: 1, durable: false });
    assert.deepEqual(kinds(L), ["ip/10.0.0.6 pool", "pod/c1/eth0 pod"]);
    assert.throws(() => L.take(B, "10.0.0.5", {}, T), LedgerError, "not in the pool any more");
    assert.throws(() => L.take(A, "10.0.0.6", {}, T), LedgerError, "A has an address");
    assert.deepEqual(
      L.free(() => true).map((r) => r.ip),
      ["10.0.0.6"],
    );
  });

  it("coolDown: a pod's address cools under its own key (durable), keeping its age; a repeated coolDown is refused", () => {
    const { L, j } = withPool("10.0.0.5");
    L.take(A, "10.0.0.5", {}, T + 5);
    const c = L.coolDown(A, { coolUntil: T + 30_000 }, T + 10);
    assert.deepEqual(last(j), { n: 2, durable: true });
    assert.deepEqual(
      { kind: c.kind, heldBy: c.heldBy, createdAt: c.createdAt },
      { kind: "cooling", heldBy: "c1/eth0", createdAt: T + 5 },
    );
    assert.equal(L.ofOwner(A), undefined, "a new pod with A's IDs is not in its way");
    assert.throws(() => L.coolDown(A, { coolUntil: T }, T), LedgerError);
  });

  it("coolDown drops a release of the same address still recorded: it committed, and the address came back to a pod", () => {
    const { L } = withPool("10.0.0.5");
    L.surplus("10.0.0.5", T);
    L.failed(addressKey("10.0.0.5"), "answer lost", T);
    L.beginAdd(A, at("-"), T);
    L.addDone(A, at("10.0.0.5"), T);
    L.coolDown(A, { coolUntil: T + 10 }, T + 1);
    assert.deepEqual(kinds(L), ["ip/10.0.0.5 cooling"]);
  });

  it("cooled and expire: only when due; detached or shared addresses never return to the pool", () => {
    const { L } = withPool("10.0.0.5", "10.0.0.6");
    L.take(A, "10.0.0.5", {}, T);
    L.coolDown(A, { coolUntil: T + 100 }, T);
    assert.throws(() => L.cooled("10.0.0.5", T + 99), LedgerError, "not due");
    assert.throws(() => L.expire("10.0.0.5", T + 99), LedgerError, "not due");
    assert.equal(L.cooled("10.0.0.5", T + 100).kind, "pool");
    L.take(B, "10.0.0.6", {}, T);
    L.coolDown(B, { coolUntil: T + 100, detached: true }, T);
    assert.throws(() => L.cooled("10.0.0.6", T + 200), LedgerError, "detached: no NIC here");
    const i = L.expire("10.0.0.6", T + 200);
    assert.equal(i.op, "release");
    assert.deepEqual(L.orphans(() => true).map(keyOf), [addressKey("10.0.0.6")], "pending until given back");
    L.released(addressKey("10.0.0.6"));
    assert.equal(L.get(addressKey("10.0.0.6")), undefined);
  });

  it("releasePod, failed, released: a pod's release is pending (durable) until the cloud has the address back", () => {
    const { L, j } = withPool("10.0.0.5");
    L.take(A, "10.0.0.5", {}, T);
    L.releasePod(A, { coolUntil: T + 50 }, T + 1);
    assert.deepEqual(last(j), { n: 2, durable: true });
    L.failed(ownerKey(A), "Nova 500", T + 2);
    const r = L.ofOwner(A);
    assert.ok(r?.kind === "intent" && r.error === "Nova 500" && r.coolUntil === T + 50, "keeps its cool-down and why");
    // the detach worked on a later try: it cools down until the time it was first given
    assert.equal(L.coolDown(A, { coolUntil: T + 50, detached: true }, T + 3).coolUntil, T + 50);
    assert.throws(() => L.released(ownerKey(A)), LedgerError, "nothing pending");
  });

  it("dropShared: a pod's pending release whose address came back to the node for another record goes without a cloud call", () => {
    const { L } = withPool("10.0.0.5");
    L.take(A, "10.0.0.5", {}, T);
    L.releasePod(A, {}, T);
    assert.throws(() => L.dropShared(A), LedgerError, "no one else holds it yet");
    L.adopt(at("10.0.0.5"), T + 1);
    assert.equal(L.heldByAnother(L.ofOwner(A)!), true);
    L.dropShared(A);
    assert.deepEqual(kinds(L), ["ip/10.0.0.5 pool"]);
  });

  it("surplus and lost: a free address goes back to the cloud (durable intent)", () => {
    const { L, j } = withPool("10.0.0.5", "10.0.0.6");
    L.surplus("10.0.0.5", T);
    L.lost("10.0.0.6", "its NIC is no longer in the VM", T);
    assert.deepEqual(
      j.entries.map((e) => e.durable),
      [true, true],
    );
    assert.deepEqual(kinds(L), ["ip/10.0.0.5 intent:release", "ip/10.0.0.6 intent:release"]);
    assert.equal((L.get(addressKey("10.0.0.6")) as { error?: string }).error, "its NIC is no longer in the VM");
    assert.throws(() => L.surplus("10.0.0.5", T), LedgerError, "not in the pool");
  });

  it("beginFill → fillDone: a batch's addresses become pool records in one durable entry; a stale release of one of them goes", () => {
    const { L, j } = withPool("10.0.0.7");
    L.surplus("10.0.0.7", T);
    L.failed(addressKey("10.0.0.7"), "answer lost", T);
    L.beginFill(at("-"), ["10.0.0.11"], T);
    assert.equal(L.get(fillKey("vm-port"))?.ip, undefined);
    assert.throws(() => L.beginFill(at("-"), [], T), LedgerError, "one batch per port at a time");
    const before = j.entries.length;
    L.fillDone("vm-port", [at("10.0.0.7"), at("10.0.0.8")], T + 1);
    assert.deepEqual(last(j), { n: before + 1, durable: true });
    assert.deepEqual(kinds(L), ["ip/10.0.0.7 pool", "ip/10.0.0.8 pool"]);
  });

  it("beginGrow → grown: an eni pool port is an intent until its NIC is in the VM", () => {
    const { L } = fresh();
    L.beginGrow({ ...at("10.0.1.5", "p5"), mode: "eni" }, T);
    assert.throws(() => L.grown("10.0.1.6", "ens5", T), LedgerError);
    const p = L.grown("10.0.1.5", "ens5", T + 1);
    assert.deepEqual(
      { kind: p.kind, hostIfname: p.hostIfname, labelled: p.labelled },
      { kind: "pool", hostIfname: "ens5", labelled: true },
    );
  });

  it("adopt and forget: recovery's edges; an address a record holds is never adopted", () => {
    const { L } = withPool("10.0.0.5");
    L.take(A, "10.0.0.5", {}, T);
    assert.throws(() => L.adopt(at("10.0.0.5"), T), LedgerError);
    L.adopt(at("10.0.0.9"), T);
    L.forget("10.0.0.9");
    assert.throws(() => L.forget("10.0.0.5"), LedgerError, "a pod's address is not forgotten");
  });

  it("searchLater and label: a DEL's search for a port by its owner is pending; labels follow the tags", () => {
    const { L } = withPool("10.0.0.5");
    L.searchLater(B, { mode: "eni", serverId: "srv", networkId: "net" }, "Neutron 503", T);
    assert.throws(() => L.searchLater(B, { mode: "eni", serverId: "srv", networkId: "net" }, "again", T), LedgerError);
    L.label(addressKey("10.0.0.5"), true, T);
    assert.equal((L.get(addressKey("10.0.0.5")) as { labelled?: boolean }).labelled, true);
    assert.throws(() => L.label(ownerKey(B), true, T), LedgerError, "an intent has no label");
  });

  it("claims: an intent worked on here is not an orphan; a crash (a new ledger from the journal) makes every intent one", () => {
    const { L, j } = fresh();
    L.beginAdd(A, at("x"), T);
    L.searchLater(B, { mode: "eni", serverId: "srv", networkId: "net" }, "e", T);
    assert.deepEqual(L.orphans(() => true).map(keyOf), [ownerKey(B)]);
    assert.equal(L.claim(ownerKey(B)), true);
    assert.equal(L.claim(ownerKey(B)), false, "one worker at a time");
    const after = new Ledger(j, j.records());
    assert.deepEqual(
      after
        .orphans(() => true)
        .map(keyOf)
        .sort(),
      [ownerKey(B), ownerKey(A)].sort(),
    );
  });
});

describe("stored records", () => {
  it("a record this version does not understand is skipped, not guessed at", () => {
    assert.equal(
      parseRec({ kind: "pod", mode: "mix", serverId: "s", networkId: "n", createdAt: 1, updatedAt: 1 }),
      undefined,
    );
    assert.equal(
      parseRec({ kind: "lease", mode: "mix", serverId: "s", networkId: "n", createdAt: 1, updatedAt: 1 }),
      undefined,
    );
    assert.ok(parseRec({ ...at("10.0.0.5"), kind: "pool", createdAt: 1, updatedAt: 1 }));
  });

  it("an earlier version's allocations become ledger records of the right kind", () => {
    const base = {
      mode: "mix" as const,
      serverId: "s",
      networkId: "n",
      portId: "vm",
      ip: "10.0.0.5",
      createdAt: 1,
      updatedAt: 2,
    };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...base, containerId: "c1", ifname: "eth0", state: "active" }, "pod/c1/eth0 pod"],
      [{ ...base, containerId: "c1", ifname: "eth0", state: "adding", before: [] }, "pod/c1/eth0 intent:add"],
      [{ ...base, containerId: "c1", ifname: "eth0", state: "releasing" }, "pod/c1/eth0 intent:release"],
      [{ ...base, containerId: "pool-10.0.0.5", ifname: "pool", state: "pool" }, "ip/10.0.0.5 pool"],
      [{ ...base, containerId: "pool-10.0.0.5", ifname: "pool", state: "releasing" }, "ip/10.0.0.5 intent:release"],
      [
        { ...base, mode: "eni", containerId: "pool-10.0.0.5", ifname: "pool", state: "adding" },
        "ip/10.0.0.5 intent:grow",
      ],
      [{ ...base, containerId: "pool-fill", ifname: "pool", state: "adding", before: [] }, "fill/vm intent:fill"],
      [
        {
          ...base,
          containerId: "cooldown-10.0.0.5",
          ifname: "cooling",
          state: "cooling",
          coolUntil: 9,
          heldBy: "c1/eth0",
        },
        "ip/10.0.0.5 cooling",
      ],
    ];
    for (const [old, want] of cases) {
      const r = fromLegacy(old as never);
      assert.ok(r !== undefined, JSON.stringify(old));
      assert.equal(`${keyOf(r)} ${r.kind}${r.kind === "intent" ? `:${r.op}` : ""}`, want);
    }
  });
});
