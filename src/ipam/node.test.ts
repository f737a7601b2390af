import { test } from "node:test";
import assert from "node:assert/strict";
import { parseNetConf } from "../cni/netconf.js";
import { parseIpamConfig } from "./config.js";
import { poolKeyOf } from "./node.js";

const conf = (openstackConf: Record<string, unknown>, securityGroups?: string[]) =>
  parseIpamConfig(
    parseNetConf(
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "n",
        type: "veth-route",
        ipam: {
          type: "tcnp-ipam",
          openstackConf,
          neutronConf: {
            networks: ["b9535039-d935-4a33-a7cb-2cc1c58ab904"],
            mode: "eni",
            ...(securityGroups === undefined ? {} : { securityGroups }),
          },
        },
      }),
      "ADD",
    ),
    { env: {}, readFile: () => "", exists: () => false },
  );

test("a pool's key tells configurations apart by groups and credentials, and shows no secret", () => {
  const base = {
    username: "u",
    password: "hunter2-secret",
    project: "p",
    domain: "default",
    authUrl: "http://u:pw-in-url@k/v3",
  };
  const k = poolKeyOf(conf(base));
  assert.doesNotMatch(k, /hunter2|pw-in-url/, "no password in a key (agent status shows keys)");
  assert.notEqual(poolKeyOf(conf(base, ["sg-1"])), k, "other security groups: another pool");
  assert.notEqual(poolKeyOf(conf({ ...base, password: "other" })), k, "other credentials: another pool");
  assert.equal(poolKeyOf(conf(base)), k);
});
