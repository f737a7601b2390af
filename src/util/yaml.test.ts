import { test } from "node:test";
import assert from "node:assert/strict";
import { parseYaml } from "./yaml.js";

test("parses a clouds.yaml with nested maps, comments, quotes and lists", () => {
  const y = parseYaml(`
clouds:
  # the lab
  lab:
    auth:
      auth_url: http://198.18.0.2:5000/v3
      username: "admin"
      password: 'it''s # not a comment'
      project_name: admin
    region_name: RegionOne
    interface: public
    verify: false
    regions:
      - RegionOne
      - name: RegionTwo
        values: 2
`);
  assert.deepEqual(y, {
    clouds: {
      lab: {
        auth: { auth_url: "http://198.18.0.2:5000/v3", username: "admin", password: "it's # not a comment", project_name: "admin" },
        region_name: "RegionOne", interface: "public", verify: false,
        regions: ["RegionOne", { name: "RegionTwo", values: 2 }],
      },
    },
  });
});

test("refuses what it does not support, naming the line", () => {
  assert.throws(() => parseYaml("a: [1, 2]"), /line 1: flow collections/);
  assert.throws(() => parseYaml("a:\n\tb: 1"), /tabs/);
  assert.throws(() => parseYaml("a: 1\n  b: 2"), /line 2/);
});
