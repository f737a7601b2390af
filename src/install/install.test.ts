import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { install } from "./install.js";

test("install places the executable, links every program name, and keeps a foreign host-device", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-install-"));
  try {
    const src = path.join(dir, "src-bin");
    fs.writeFileSync(src, "#!/bin/sh\necho hi\n");
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "host-device"), "reference plugin");
    const r = install({ source: src, binDir: bin });
    assert.equal(fs.readFileSync(path.join(bin, "tcnp"), "utf8"), "#!/bin/sh\necho hi\n");
    assert.equal(fs.statSync(path.join(bin, "tcnp")).mode & 0o777, 0o755);
    for (const n of ["tcnp-ipam", "host-device", "veth-host", "veth-route", "vrouter-route-controller"]) {
      assert.equal(fs.readlinkSync(path.join(bin, n)), "tcnp");
    }
    assert.deepEqual(r.backedUp, [path.join(bin, "host-device.orig")]);
    assert.equal(fs.readFileSync(path.join(bin, "host-device.orig"), "utf8"), "reference plugin");
    const again = install({ source: src, binDir: bin });
    assert.deepEqual(again.backedUp, [], "re-install replaces links and backs nothing up");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("install refuses a missing source", () => {
  assert.throws(() => install({ source: "/nonexistent/tcnp", binDir: os.tmpdir() }), /does not exist/);
});
