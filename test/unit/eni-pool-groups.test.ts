// eni pool ports carry the pods' security groups (issue 21 item 1): the configured ones, else the VM
// port's own — the agent's pool made its ports with none, so Neutron gave them the project's
// `default` group — and a configuration with other groups never shares a pool (its key differs).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { poolKeyOf } from "../../src/ipam/node.js";
import { IpamSession } from "../../src/ipam/session.js";
import { ENI_NET } from "../helpers/fake-node.js";
import { ModelNode } from "../helpers/model-node.js";
import { Runtime } from "../helpers/node-runtime.js";

const poolPorts = (n: ModelNode) =>
  Object.values(n.em.world.ports).filter((p) => p.network_id === ENI_NET && p.name === "tcnp-eni-pool");

describe("eni pool ports and security groups", () => {
  it("the agent's pool ports carry the configured security groups; a pod from the pool has them", async () => {
    const n = await ModelNode.create();
    const r = new Runtime(n, "groups");
    try {
      const restricted = {
        id: randomUUID(),
        name: "restricted",
        project_id: Object.values(n.em.world.projects ?? {})[0]?.id ?? "",
      };
      n.em.world.securityGroups[restricted.id] = restricted as never;
      n.startAgent();
      const conf = n.conf("eni", { securityGroups: [restricted.id] });
      n.agent!.writer.poolFor(conf);
      await n.drive(n.agent!.writer.maintain(), { proc: n.agent!.proc });
      assert.ok(poolPorts(n).length >= 2, "the pool made its ports");
      for (const p of poolPorts(n)) assert.deepEqual(p.security_groups, [restricted.id], `pool port ${p.id}`);
      // Another configuration (other groups) is another pool.
      const s1 = new IpamSession(n.deps(n.agent!.proc), conf);
      const s2 = new IpamSession(n.deps(n.agent!.proc), n.conf("eni"));
      assert.notEqual(poolKeyOf(s1.cfg), poolKeyOf(s2.cfg));
    } finally {
      await r.drain();
      n.cleanup();
    }
  });

  it("without configured groups, pool ports take the VM port's own groups, not the project's default", async () => {
    const n = await ModelNode.create();
    const r = new Runtime(n, "vm groups");
    try {
      const vmEni = Object.values(n.em.world.ports).find(
        (p) => p.network_id === ENI_NET && p.mac_address === "fa:16:3e:00:02:01",
      )!;
      const own = { id: randomUUID(), name: "nodes", project_id: "" };
      n.em.world.securityGroups[own.id] = own as never;
      vmEni.security_groups = [own.id];
      n.startAgent();
      await r.upkeep();
      assert.ok(poolPorts(n).length >= 2);
      for (const p of poolPorts(n)) assert.deepEqual(p.security_groups, [own.id], `pool port ${p.id}`);
    } finally {
      await r.drain();
      n.cleanup();
    }
  });
});
