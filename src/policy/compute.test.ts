import assert from "node:assert/strict";
import { test } from "node:test";
import { judgedAtSource, podPolicy, selects, type World } from "./compute.js";
import { parsePolicy, type Pod } from "./model.js";
import { chainRules, hostBase, hostPodScript, judgedRules, podNetnsScript } from "./nft.js";

const pod = (
  namespace: string,
  name: string,
  ip: string,
  labels: Record<string, string>,
  ports: Pod["ports"] = [],
): Pod => ({
  namespace,
  name,
  uid: `${namespace}-${name}`,
  labels,
  ips: [ip],
  hostNetwork: false,
  finished: false,
  ports,
});
const A = pod("x", "a", "10.0.0.1", { app: "a" }, [{ name: "http", containerPort: 8080, protocol: "TCP" }]);
const B = pod("x", "b", "10.0.0.2", { app: "b" });
const C = pod("y", "c", "10.0.0.3", { app: "a" }, [{ name: "http", containerPort: 9090, protocol: "TCP" }]);
const D = pod("z", "d", "10.0.0.4", { app: "d" });
const world = (...policies: unknown[]): World => ({
  policies: policies.map(parsePolicy),
  pods: [A, B, C, D],
  namespaces: new Map([
    ["x", { name: "x", labels: { ns: "x" } }],
    ["y", { name: "y", labels: { ns: "y", team: "blue" } }],
    ["z", { name: "z", labels: { ns: "z", team: "red" } }],
  ]),
});
const np = (ns: string, spec: unknown): unknown => ({ metadata: { namespace: ns, name: "p" }, spec });

test("selectors: matchLabels and every matchExpressions operator; {} selects all", () => {
  const l = { app: "a", tier: "web" };
  assert.equal(selects({}, l), true);
  assert.equal(selects({ matchLabels: { app: "a" } }, l), true);
  assert.equal(selects({ matchLabels: { app: "b" } }, l), false);
  assert.equal(selects({ matchExpressions: [{ key: "tier", operator: "In", values: ["web", "db"] }] }, l), true);
  assert.equal(selects({ matchExpressions: [{ key: "tier", operator: "NotIn", values: ["web"] }] }, l), false);
  assert.equal(selects({ matchExpressions: [{ key: "x", operator: "NotIn", values: ["web"] }] }, l), true);
  assert.equal(selects({ matchExpressions: [{ key: "x", operator: "Exists" }] }, l), false);
  assert.equal(selects({ matchExpressions: [{ key: "x", operator: "DoesNotExist" }] }, l), true);
  assert.equal(selects({ matchExpressions: [{ key: "app", operator: "Bogus" }] }, l), false);
});

test("no policy: not isolated either way; a policy with only ingress isolates ingress only", () => {
  assert.deepEqual(podPolicy(A, world()).ingress.policies, []);
  const p = podPolicy(A, world(np("x", { podSelector: {} })));
  assert.deepEqual(p.ingress, { policies: ["x/p"], clauses: [] });
  assert.deepEqual(p.egress.policies, []);
  assert.deepEqual(chainRules(p.ingress, "ingress"), ["counter drop"]);
  assert.deepEqual(chainRules(p.egress, "egress"), []);
  // Another namespace's policy does not select it.
  assert.deepEqual(podPolicy(A, world(np("y", { podSelector: {} }))).ingress.policies, []);
});

test("policyTypes: Egress alone leaves ingress open; egress rules imply Egress", () => {
  const p = podPolicy(A, world(np("x", { podSelector: {}, policyTypes: ["Egress"] })));
  assert.deepEqual(p.ingress.policies, []);
  assert.deepEqual(p.egress.policies, ["x/p"]);
  const q = podPolicy(A, world(np("x", { podSelector: {}, egress: [{}] })));
  assert.deepEqual(q.ingress.policies, ["x/p"]);
  assert.deepEqual(chainRules(q.egress, "egress"), ["return", "counter drop"]);
});

test("peers: podSelector in the policy's namespace, namespaceSelector alone, both ANDed, across peers ORed", () => {
  const from = (peers: unknown[]): string[] =>
    chainRules(
      podPolicy(A, world(np("x", { podSelector: { matchLabels: { app: "a" } }, ingress: [{ from: peers }] }))).ingress,
      "ingress",
    );
  assert.deepEqual(from([{ podSelector: { matchLabels: { app: "b" } } }]), [
    "ip saddr { 10.0.0.2 } return",
    "counter drop",
  ]);
  assert.deepEqual(from([{ namespaceSelector: { matchLabels: { team: "blue" } } }]), [
    "ip saddr { 10.0.0.3 } return",
    "counter drop",
  ]);
  assert.deepEqual(from([{ namespaceSelector: {}, podSelector: { matchLabels: { app: "a" } } }]), [
    "ip saddr { 10.0.0.1, 10.0.0.3 } return",
    "counter drop",
  ]);
  assert.deepEqual(
    from([
      { namespaceSelector: { matchExpressions: [{ key: "team", operator: "Exists" }] } },
      { podSelector: { matchLabels: { app: "b" } } },
    ]),
    ["ip saddr { 10.0.0.3, 10.0.0.4 } return", "ip saddr { 10.0.0.2 } return", "counter drop"],
  );
  // A selector that selects no pod allows nothing.
  assert.deepEqual(from([{ podSelector: { matchLabels: { app: "none" } } }]), ["counter drop"]);
});

test("ipBlock with except; ports: numbers, ranges (endPort), names on the pod itself, protocols kept apart", () => {
  const p = podPolicy(
    A,
    world(
      np("x", {
        podSelector: {},
        ingress: [
          {
            from: [{ ipBlock: { cidr: "10.0.0.0/16", except: ["10.0.1.0/24", "10.0.2.0/24"] } }],
            ports: [
              { port: 80 },
              { port: 8000, endPort: 8010 },
              { protocol: "UDP", port: "http" },
              { port: "http" },
              { protocol: "SCTP", port: 80 },
            ],
          },
        ],
      }),
    ),
  );
  assert.deepEqual(chainRules(p.ingress, "ingress"), [
    // No anonymous interval sets (nft reads each back before every transaction on the table): each
    // exception its own `!=`, each range its own rule.
    "ip saddr 10.0.0.0/16 ip saddr != 10.0.1.0/24 ip saddr != 10.0.2.0/24 meta l4proto tcp th dport { 80, 8080 } return",
    "ip saddr 10.0.0.0/16 ip saddr != 10.0.1.0/24 ip saddr != 10.0.2.0/24 meta l4proto tcp th dport 8000-8010 return",
    "ip saddr 10.0.0.0/16 ip saddr != 10.0.1.0/24 ip saddr != 10.0.2.0/24 meta l4proto sctp th dport 80 return",
    "counter drop",
  ]);
});

test("egress named ports resolve on each peer pod; a rule whose ports all fail to resolve allows nothing", () => {
  const p = podPolicy(
    B,
    world(
      np("x", {
        podSelector: {},
        egress: [
          { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: "a" } } }], ports: [{ port: "http" }] },
        ],
      }),
    ),
  );
  assert.deepEqual(chainRules(p.egress, "egress"), [
    "ip daddr { 10.0.0.1 } meta l4proto tcp th dport 8080 return",
    "ip daddr { 10.0.0.3 } meta l4proto tcp th dport 9090 return",
    "counter drop",
  ]);
  const q = podPolicy(B, world(np("x", { podSelector: {}, ingress: [{ ports: [{ port: "nope" }] }] })));
  assert.deepEqual(chainRules(q.ingress, "ingress"), ["counter drop"]);
});

test("egress to every peer on a named port: every pod whose port has that name (found by the upstream e2e suite)", () => {
  const p = podPolicy(
    B,
    world(np("x", { podSelector: {}, egress: [{ ports: [{ port: "http" }, { port: 53, protocol: "UDP" }] }] })),
  );
  assert.deepEqual(chainRules(p.egress, "egress"), [
    "meta l4proto udp th dport 53 return",
    "ip daddr { 10.0.0.1 } meta l4proto tcp th dport 8080 return",
    "ip daddr { 10.0.0.3 } meta l4proto tcp th dport 9090 return",
    "counter drop",
  ]);
});

test("policies add up; finished and host-network pods are no peers", () => {
  const w = world(np("x", { podSelector: {}, ingress: [{ from: [{ podSelector: { matchLabels: { app: "b" } } }] }] }), {
    metadata: { namespace: "x", name: "q" },
    spec: { podSelector: { matchLabels: { app: "a" } }, ingress: [{ ports: [{ port: 443 }] }] },
  });
  const p = podPolicy(A, w);
  assert.deepEqual(p.ingress.policies, ["x/p", "x/q"]);
  assert.deepEqual(chainRules(p.ingress, "ingress"), [
    "ip saddr { 10.0.0.2 } return",
    "meta l4proto tcp th dport 443 return",
    "counter drop",
  ]);
  const gone = { ...w, pods: [A, { ...B, finished: true }, C, D] };
  assert.deepEqual(chainRules(podPolicy(A, gone).ingress, "ingress"), [
    "meta l4proto tcp th dport 443 return",
    "counter drop",
  ]);
});

test("scripts: a pod's host chains replace and remove in one transaction; an eni pod's table names its node", () => {
  const s = hostPodScript("vethabc", { ingress: ["counter drop"] });
  assert.match(s, /flush chain inet tcnp_policy vethabc-in\n/);
  assert.match(s, /add rule inet tcnp_policy vethabc-in counter drop\n/);
  assert.match(
    s,
    /delete element inet tcnp_policy egress \{ "vethabc" \}\ndelete chain inet tcnp_policy vethabc-out\n/,
  );
  const t = podNetnsScript({ ingress: [], egress: ["counter drop"], nodeVeth: "veth0", nodeAddresses: ["192.0.2.1"] });
  assert.match(t, /ip saddr \{ 192\.0\.2\.1 \} accept/);
  assert.match(t, /oifname "veth0" accept/);
  assert.match(t, /^add table inet tcnp_policy\ndelete table inet tcnp_policy\n/);
});

test("judged at the source: what isolated remote pods admit from a masqueraded client, on their ports", () => {
  // x's pods admit app=b on 8080 and the 10.0.0.0/30 block less 10.0.0.2; z's pod admits nothing.
  const w = world(
    np("x", {
      podSelector: {},
      ingress: [
        { from: [{ podSelector: { matchLabels: { app: "b" } } }], ports: [{ port: 8080 }] },
        { from: [{ ipBlock: { cidr: "10.0.0.0/30", except: ["10.0.0.2/32"] } }] },
      ],
    }),
    { metadata: { namespace: "z", name: "deny" }, spec: { podSelector: {}, policyTypes: ["Ingress"] } },
  );
  const remote = (p: Pod): boolean => p !== B;
  const fromB = judgedAtSource(B, w, remote);
  assert.deepEqual(fromB.isolated.sort(), ["10.0.0.1", "10.0.0.4"], "y's pod is not isolated: not listed");
  assert.deepEqual(fromB.allowed, [{ ips: ["10.0.0.1"], ports: [{ protocol: "tcp", first: 8080, last: 8080 }] }]);
  assert.deepEqual(judgedRules(fromB), [
    "ip daddr { 10.0.0.1 } meta l4proto tcp th dport 8080 ip dscp set 11 return",
    "ip daddr { 10.0.0.1, 10.0.0.4 } counter drop",
  ]);
  // C (10.0.0.3) is in the block and not excepted: any port of x's pods; a local pod (A here) is
  // judged on its own node, never here.
  const fromC = judgedAtSource(C, w, (p) => p !== C && p !== A);
  assert.deepEqual(fromC.allowed, [{ ips: ["10.0.0.2"] }]);
  assert.deepEqual(fromC.isolated, ["10.0.0.2", "10.0.0.4"]);
  assert.deepEqual(judgedAtSource(C, w, (p) => p !== C).allowed, [{ ips: ["10.0.0.1"] }, { ips: ["10.0.0.2"] }]);
  // No isolated remote pod: no chain at all.
  assert.deepEqual(judgedRules(judgedAtSource(B, world(), remote)), []);
});

test("the node's table: only a node's judgement marks, and only marked traffic from nodes passes unjudged", () => {
  const base = hostBase();
  const rules = base.split("\n").filter((l) => l.startsWith("add rule inet tcnp_policy forward"));
  const at = (re: RegExp): number => rules.findIndex((r) => re.test(r));
  // A pod's own mark is cleared before anything trusts a mark; the trusted source excludes pods.
  assert.ok(at(/iifname @pods ip dscp 11 ip dscp set 0/) >= 0);
  assert.ok(at(/iifname @pods ip dscp 11/) < at(/iifname != @pods ip saddr @nodes ip dscp 11 accept/));
  assert.ok(at(/saddr @nodes/) < at(/vmap @ingress/));
  assert.ok(at(/vmap @egress/) < at(/vmap @svc/), "the client's own egress first, then the server's ingress");
  assert.match(base, /add rule inet tcnp_policy output ip dscp 11 ip dscp set 0/);
  const t = podNetnsScript({ ingress: [], egress: [], nodeAddresses: [], nodes: ["192.0.2.2", "192.0.2.1"] });
  assert.match(t, /ip saddr \{ 192\.0\.2\.1, 192\.0\.2\.2 \} ip dscp 11 accept/);
  // svc chain: not given, not touched (no chain made and deleted in one transaction: costly);
  // empty rules remove it (with its map element); a DEL removes it.
  assert.doesNotMatch(hostPodScript("vethq", { ingress: [], egress: [] }), /svc/);
  assert.match(hostPodScript("vethq", {}, false), /delete chain inet tcnp_policy vethq-svc/);
  assert.match(hostPodScript("vethq", { egress: [], svc: [] }), /delete element inet tcnp_policy svc \{ "vethq" \}/);
  assert.match(hostPodScript("vethq", {}, false), /delete element inet tcnp_policy pods \{ "vethq" \}/);
});
