import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeKernel } from "../kernel/fake-kernel.js";
import { plugNic } from "./datapath.js";

// Five eni pods started at once on one VM: five attaches at once. Each NIC must arrive, under its own name.
test("concurrent attaches to one VM each plug a NIC, named one after the other", async () => {
  const k = new FakeKernel();
  const wire = await k.createNetns("wire");
  await k.createLink(wire, { name: "br0", kind: "bridge" });
  const vm = await k.createNetns("vm1");
  const ports = Array.from({ length: 5 }, (_, i) => ({
    id: `p000000${i}-0000-4000-8000-00000000000${i}`,
    mac_address: `fa:16:3e:00:00:0${i}`,
  }));
  const names = await Promise.all(ports.map((p) => plugNic(k, { netns: wire, bridge: "br0" }, vm, p, 1450)));
  assert.deepEqual([...names].sort(), ["ens4", "ens5", "ens6", "ens7", "ens8"]);
  const macs = (await k.listLinks(vm))
    .map((l) => l.mac)
    .filter((m) => m.startsWith("fa:16:3e"))
    .sort();
  assert.deepEqual(
    macs,
    ports.map((p) => p.mac_address),
  );
});
