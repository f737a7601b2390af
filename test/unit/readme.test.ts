// The README's first lines are the two commands a new operator runs in a root shell of this kind,
// which has no sudo: each must be a script of this repository, runnable as written.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { repoRoot } from "../helpers/cni.js";

test("the README's two commands run as written in a root shell without sudo", () => {
  const lines = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8").split("\n");
  const commands = lines
    .slice(1, 8)
    .filter((l) => l.startsWith("    "))
    .map((l) => l.trim().split("#")[0]!.trim());
  assert.deepEqual(commands, ["scripts/lab.sh", "scripts/test.sh"]);
  for (const c of commands) {
    const file = path.join(repoRoot, c.split(/\s+/)[0]!);
    fs.accessSync(file, fs.constants.X_OK);
    assert.match(fs.readFileSync(file, "utf8"), /^#!\/bin\/bash/, `${c} starts with its interpreter`);
  }
  assert.equal(
    fs.readFileSync(path.join(repoRoot, ".ci", "run"), "utf8").includes("exec scripts/test.sh"),
    true,
    ".ci/run is exactly the test command",
  );
});

test("the README's clouds.yaml example is read by tcnp as written", async () => {
  const { parseYaml } = await import("../../src/util/yaml.js");
  const text = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8");
  const block = /```yaml\n# \/etc\/openstack\/clouds\.yaml[^\n]*\n([\s\S]*?)```/.exec(text);
  assert.ok(block !== null, "the README shows a clouds.yaml");
  const y = parseYaml(block[1]!) as { clouds: { pods: { auth: Record<string, string>; region_name: string } } };
  assert.equal(y.clouds.pods.auth["username"], "k8s-cni");
  assert.equal(y.clouds.pods.auth["auth_url"], "https://keystone.example:5000/v3");
  assert.equal(y.clouds.pods.region_name, "RegionOne");
});
