// An agent that starts while the cloud fails compares its pools with the cloud once the cloud
// answers (it used to try once, at start, and never again until a restart): it adopts the pool
// addresses the port's tags name and no record knows, and forgets pool records whose address has
// left the port. Fake clock, the embedded cloud in process, no root.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { VM1, VM1_MAC, MIX_NET } from "../helpers/fake-node.js";
import { ModelNode } from "../helpers/model-node.js";
import { Runtime } from "../helpers/node-runtime.js";

describe("the agent's recovery is part of its upkeep", () => {
  it("retried with the other cloud work until Neutron answers", async () => {
    const n = await ModelNode.create({ pool: { warmTarget: 0 } });
    const r = new Runtime(n, "recovery");
    try {
      // Records lost with the disk: the port holds a pool address (tagged) no record knows; and a
      // pool record names an address someone removed from the port.
      const port = Object.values(n.em.world.ports).find((p) => p.device_id === VM1 && p.mac_address === VM1_MAC)!;
      const subnet = port.fixed_ips[0]!.subnet_id;
      port.fixed_ips.push({ subnet_id: subnet, ip_address: "10.10.10.77" });
      port.tags.push("tcnp-pool=10.10.10.77");
      n.journal.commit(
        [
          {
            put: {
              kind: "pool",
              mode: "mix",
              serverId: VM1,
              networkId: MIX_NET,
              portId: port.id,
              subnetId: subnet,
              ip: "10.10.10.78",
              createdAt: 1,
              updatedAt: 1,
            },
          },
        ],
        true,
      );
      n.em.addFault({ kind: "error", service: "network", status: 500 });
      n.startAgent();
      await r.upkeep();
      const pool = n.agent!.writer.pools()[0]!;
      assert.match(pool.view().cloudError ?? "", /500/, "the cloud fails");
      assert.ok(pool.view().pendingReleases >= 1, "its first look at the cloud is pending work");
      assert.deepEqual(
        n.records().map((x) => x.ip),
        ["10.10.10.78"],
        "nothing adopted or forgotten while Neutron fails",
      );
      n.em.clearFaults();
      n.clock.advance(31_000); // past the backoff
      await r.upkeep();
      assert.deepEqual(
        n.records().map((x) => `${x.kind} ${x.ip}`),
        ["pool 10.10.10.77"],
        "adopted what the tags name, forgot what left the port",
      );
      assert.equal(pool.view().pendingReleases, 0);
      await r.drain();
    } finally {
      n.cleanup();
    }
  });
});
