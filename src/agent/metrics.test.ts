import { test } from "node:test";
import assert from "node:assert/strict";
import { Metrics } from "../controller/metrics.js";
import { countRequest } from "./metrics.js";

test("a request's command label is a CNI verb or 'other': a runtime's CNI_COMMAND cannot add label values", () => {
  const m = new Metrics();
  countRequest(m, { plugin: "veth-route", command: "ADD", ok: true, seconds: 0.01 });
  for (let i = 0; i < 50; i++) countRequest(m, { plugin: "veth-route", command: `X${i}`, ok: false, seconds: 0 });
  const text = m.render();
  assert.match(text, /tcnp_agent_requests_total\{[^}]*command="ADD"[^}]*\} 1/);
  assert.match(text, /tcnp_agent_requests_total\{[^}]*command="other"[^}]*\} 50/);
  assert.doesNotMatch(text, /command="X/);
});
