import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { serveControllerHttp } from "./http.js";
import { Metrics } from "./metrics.js";

test("listen unix:PATH replaces a socket left by an earlier run, never another file", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-http-"));
  try {
    const file = path.join(dir, "precious");
    fs.writeFileSync(file, "data");
    await assert.rejects(
      serveControllerHttp(`unix:${file}`, new Metrics(), { healthy: () => ({ ok: true, detail: "" }) }),
      /exists and is not a socket/,
    );
    assert.equal(fs.readFileSync(file, "utf8"), "data", "the file is untouched");
    const sock = path.join(dir, "m.sock");
    const a = await serveControllerHttp(`unix:${sock}`, new Metrics(), { healthy: () => ({ ok: true, detail: "" }) });
    await a.close();
    fs.rmSync(sock, { force: true });
    // a socket file left behind (the process died) is replaced
    const b = await serveControllerHttp(`unix:${sock}`, new Metrics(), { healthy: () => ({ ok: true, detail: "" }) });
    await b.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
