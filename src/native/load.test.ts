import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { isTrustedCacheFile } from "./load.js";

test("a cached addon is loaded only when it is ours, private, and exactly the asset", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-native-test-"));
  try {
    const bytes = Buffer.from("the real addon");
    const file = path.join(dir, "tcnp-0123.node");
    fs.writeFileSync(file, bytes, { mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    const uid = process.getuid!();
    assert.equal(isTrustedCacheFile(file, bytes, uid), true);
    assert.equal(isTrustedCacheFile(file, Buffer.from("planted code"), uid), false, "other bytes");
    assert.equal(isTrustedCacheFile(file, bytes, uid + 1), false, "someone else's file");
    fs.chmodSync(file, 0o766);
    assert.equal(isTrustedCacheFile(file, bytes, uid), false, "a file others may write");
    fs.chmodSync(file, 0o700);
    fs.chmodSync(dir, 0o1777);
    assert.equal(isTrustedCacheFile(file, bytes, uid), false, "a directory others may write (like /tmp)");
    fs.chmodSync(dir, 0o700);
    fs.rmSync(file);
    fs.symlinkSync("/bin/true", file);
    assert.equal(isTrustedCacheFile(file, bytes, uid), false, "a symlink");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
