import assert from "node:assert/strict";
import { test } from "node:test";
import { chainRules } from "./nft.js";
import { isSharedSet, SharedSets } from "./sets.js";
import type { Direction } from "./compute.js";

const d = (ips: string[]): Direction => ({ policies: ["x/p"], clauses: [{ peers: { ips }, policy: "x/p" }] });

test("shared sets: one set per address list, created once, deleted with its last user", () => {
  const sets = new SharedSets();
  const a = sets.namer();
  const rules = chainRules(d(["10.0.0.2", "10.0.0.1", "fd00::1"]), "ingress", a.named);
  assert.equal(rules.length, 3);
  const [v4, v6] = [...a.wanted.keys()];
  assert.ok(isSharedSet(v4!) && isSharedSet(v6!) && v4!.startsWith("a") && v6!.startsWith("b"));
  assert.equal(rules[0], `ip saddr @${v4} return`);
  const pa = sets.plan("pod-a", a.wanted);
  assert.match(
    pa.before,
    new RegExp(
      `add set inet tcnp_policy ${v4} \\{ type ipv4_addr; \\}\\nadd element inet tcnp_policy ${v4} \\{ 10\\.0\\.0\\.1, 10\\.0\\.0\\.2 \\}`,
    ),
  );
  assert.equal(pa.after, "");
  pa.commit();

  // A second pod naming the same peers: nothing to create.
  const b = sets.namer();
  chainRules(d(["10.0.0.1", "10.0.0.2"]), "ingress", b.named);
  const pb = sets.plan("pod-b", b.wanted);
  assert.equal(pb.before, "");
  pb.commit();

  // pod-a's peers change: a new set; the old v4 set stays (pod-b names it), the v6 one goes.
  const a2 = sets.namer();
  chainRules(d(["10.0.0.3"]), "ingress", a2.named);
  const pa2 = sets.plan("pod-a", a2.wanted);
  assert.match(pa2.before, /add element inet tcnp_policy a[0-9a-f]{15} \{ 10\.0\.0\.3 \}/);
  assert.equal(pa2.after, `delete set inet tcnp_policy ${v6}\n`);
  pa2.commit();
  assert.equal(sets.known(v6!), false);

  // pod-b leaves: the first v4 set goes with it.
  const gone = sets.plan("pod-b", new Map());
  assert.equal(gone.after, `delete set inet tcnp_policy ${v4}\n`);
  gone.commit();
  assert.equal(sets.known(v4!), false);
  // A plan never applied changes nothing.
  sets.plan("pod-a", new Map());
  assert.equal(
    [...a2.wanted.keys()].every((n) => sets.known(n)),
    true,
  );
});
