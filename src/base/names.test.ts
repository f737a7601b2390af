import { test } from "node:test";
import assert from "node:assert/strict";
import { invokedAs } from "./names.js";

test("the program is chosen by the name it was executed under", () => {
  assert.equal(invokedAs("/opt/cni/bin/host-device", ["/opt/cni/bin/tcnp", "/opt/cni/bin/tcnp"]), "host-device");
  assert.equal(invokedAs("tcnp-ipam", ["/x/tcnp"]), "tcnp-ipam");
  assert.equal(invokedAs("node", ["node", "/repo/dist/veth-route.cjs"]), "veth-route");
  assert.equal(invokedAs("node", ["node", "/repo/dist/tcnp.cjs"]), "tcnp");
  assert.equal(invokedAs("/usr/local/bin/whatever", ["whatever"]), "tcnp");
});
