// An upgraded node: the allocation files of an earlier version are readable at once and become
// ledger records the first time the node's writer opens the ledger.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { openLedger, readLedger } from "./ledger-files.js";

describe("the ledger's files", () => {
  it("takes over an earlier version's allocations (pod, pool, cooling) and removes their files", () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-ledger-"));
    try {
      const dir = path.join(stateDir, "allocations");
      fs.mkdirSync(dir);
      const base = { mode: "mix", serverId: "s", networkId: "n", portId: "vm", createdAt: 1, updatedAt: 1 };
      const write = (name: string, a: object): void => fs.writeFileSync(path.join(dir, name), JSON.stringify(a));
      write("c1__eth0.json", { ...base, containerId: "c1", ifname: "eth0", state: "active", ip: "10.0.0.5" });
      write("pool-10.0.0.6__pool.json", {
        ...base,
        containerId: "pool-10.0.0.6",
        ifname: "pool",
        state: "pool",
        ip: "10.0.0.6",
      });
      write("cooldown-10.0.0.7__cooling.json", {
        ...base,
        containerId: "cooldown-10.0.0.7",
        ifname: "cooling",
        state: "cooling",
        ip: "10.0.0.7",
        coolUntil: 5,
        heldBy: "c0/eth0",
      });
      const kinds = (): string[] =>
        readLedger(stateDir)
          .map((r) => `${r.kind} ${r.ip}`)
          .sort();
      const want = ["cooling 10.0.0.7", "pod 10.0.0.5", "pool 10.0.0.6"];
      assert.deepEqual(kinds(), want, "readable before any writer opened the ledger");
      const open = openLedger(stateDir);
      assert.deepEqual(
        open.ledger
          .all()
          .map((r) => `${r.kind} ${r.ip}`)
          .sort(),
        want,
      );
      open.close();
      assert.equal(fs.existsSync(dir), false, "the old files are gone");
      assert.deepEqual(kinds(), want);
    } finally {
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
