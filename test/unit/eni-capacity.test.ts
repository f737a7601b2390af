// eni capacity (issue 22 item 3): the node's eni capacity (the tcnp.io/eni extended resource) is
// what the VM can hold — a small default, and fewer once an attach finds the PCIe slots full — not
// the mix pool's 110.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { capacityOf } from "../../src/agent/node.js";
import { parseNetConf } from "../../src/cni/netconf.js";
import { parseIpamConfig } from "../../src/ipam/config.js";
import { ENI_NET, MIX_NET, testOpenstackConf } from "../helpers/fake-node.js";
import { ModelNode } from "../helpers/model-node.js";
import { Runtime } from "../helpers/node-runtime.js";

describe("eni capacity", () => {
  it("defaults to 4 eni ports a node (mix: 110 addresses)", () => {
    const cfg = (mode: "mix" | "eni") =>
      parseIpamConfig(
        parseNetConf(
          JSON.stringify({
            cniVersion: "1.0.0",
            name: "n",
            type: "host-device",
            ipam: {
              type: "tcnp-ipam",
              openstackConf: testOpenstackConf(),
              neutronConf: { networks: [mode === "eni" ? ENI_NET : MIX_NET], mode },
            },
          }),
          "ADD",
        ),
        { env: {}, readFile: () => "", exists: () => false },
      );
    assert.equal(cfg("eni").pool.maximum, 4);
    assert.equal(cfg("mix").pool.maximum, 110);
  });

  it("is learnt as the ports the VM holds once an attach finds no free PCIe slot", async () => {
    const n = await ModelNode.create({ slots: 3, pool: { warmTarget: 6, maximum: 10 } });
    const r = new Runtime(n, "capacity");
    try {
      n.startAgent();
      for (let i = 0; i < 3; i++) await r.upkeep();
      const eni = n.agent!.writer.views().find((v) => v.mode === "eni")!;
      assert.equal(eni.targets.maximum, 3, "the 3 ports the VM could take");
      assert.equal(eni.free.length, 3);
      assert.equal(capacityOf(n.agent!.writer.views()).eni, 3);
      assert.equal(capacityOf(n.agent!.writer.views()).mix, 10);
    } finally {
      await r.drain();
      n.cleanup();
    }
  });
});
