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
        auth: {
          auth_url: "http://198.18.0.2:5000/v3",
          username: "admin",
          password: "it's # not a comment",
          project_name: "admin",
        },
        region_name: "RegionOne",
        interface: "public",
        verify: false,
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

// The shapes deployment tools write: devstack's (quoted versions, ids for domains) and
// kolla-ansible's (a cacert path, interface internal).
test("reads the clouds.yaml files devstack and kolla-ansible write", () => {
  const devstack = parseYaml(`clouds:
  devstack:
    auth:
      auth_url: http://10.0.0.5/identity
      password: secretadmin
      project_domain_id: default
      project_name: demo
      user_domain_id: default
      username: demo
    identity_api_version: '3'
    region_name: RegionOne
    volume_api_version: '3'
  devstack-admin:
    auth:
      auth_url: http://10.0.0.5/identity
      password: secretadmin
      project_domain_id: default
      project_name: admin
      user_domain_id: default
      username: admin
    identity_api_version: '3'
    region_name: RegionOne
`);
  assert.deepEqual((devstack as { clouds: Record<string, unknown> }).clouds["devstack-admin"], {
    auth: {
      auth_url: "http://10.0.0.5/identity",
      password: "secretadmin",
      project_domain_id: "default",
      project_name: "admin",
      user_domain_id: "default",
      username: "admin",
    },
    identity_api_version: "3",
    region_name: "RegionOne",
  });
  const kolla = parseYaml(`---
clouds:
  kolla-admin:
    auth:
      auth_url: https://10.0.0.10:5000
      password: "p@ss: with # and 'quotes'"
      project_domain_name: Default
      project_name: admin
      user_domain_name: Default
      username: admin
    cacert: /etc/kolla/certificates/ca/root.crt
    identity_api_version: 3
    interface: internal
    region_name: RegionOne
`);
  const k = (kolla as { clouds: Record<string, Record<string, unknown>> }).clouds["kolla-admin"]!;
  assert.equal((k["auth"] as Record<string, unknown>)["password"], "p@ss: with # and 'quotes'");
  assert.equal(k["cacert"], "/etc/kolla/certificates/ca/root.crt");
  assert.equal(k["identity_api_version"], 3);
  assert.equal(k["interface"], "internal");
});

test("refuses, with the line, what it cannot read rather than misreading it (a PEM block, a flow list)", () => {
  assert.throws(
    () => parseYaml("clouds:\n  c:\n    cacert: |\n      -----BEGIN CERTIFICATE-----\n"),
    /YAML line 3: .*block scalars are not supported/,
  );
  assert.throws(
    () => parseYaml("clouds:\n  c:\n    regions: [RegionOne, RegionTwo]\n"),
    /YAML line 3: flow collections/,
  );
});
