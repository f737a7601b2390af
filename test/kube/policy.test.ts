// NetworkPolicy truth tables (issue 24): the agent's policy engine against a real kube-apiserver (under
// the shipped tcnp-node role), programming real nftables on two "nodes" (network namespaces routed to
// each other); pods in three namespaces on both nodes, mix pods behind host veths and eni-style pods
// whose table lives in their own namespace. Every pair is probed with real TCP connections after each
// change of policies, against a table written here by hand. And the start-up race: no packet reaches
// a new pod before its rules exist.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PolicyEngine } from "../../src/agent/policy.js";
import {
  addressesWithoutAgent,
  forgetWithoutAgent,
  isolateWithoutAgent,
  type PolicyTarget,
} from "../../src/agent/policy-node.js";
import { Kube } from "../../src/controller/kube.js";
import { Metrics } from "../../src/controller/metrics.js";
import { nftApply, nftListTable } from "../../src/kernel/nft.js";
import { HOST } from "../../src/kernel/types.js";
import { nullLogger } from "../../src/log/logger.js";
import { hostVethName } from "../../src/net/names.js";
import { nodeFetch } from "../../src/openstack/node-fetch.js";
import { repoRoot } from "../helpers/cni.js";
import { controlPlaneSkipReason, startControlPlane, type ControlPlane } from "../helpers/kube-real.js";
import { addNetns, cleanupNamespaces, nsExec } from "../helpers/namespaces.js";
import { hasCommand, skipUnlessRequired } from "../helpers/root.js";

const skip =
  controlPlaneSkipReason() ??
  skipUnlessRequired(
    ["nft", "socat", "nc"].every(hasCommand) ? undefined : "needs nft, socat and nc (scripts/setup-deps.sh)",
  );

interface TestPod {
  ns: string;
  name: string;
  labels: Record<string, string>;
  node: number;
  eni: boolean;
  ip: string;
  netns?: { name: string; path: string };
  containerId: string;
}

const PODS: TestPod[] = [
  { ns: "x", name: "a", labels: { app: "a" }, node: 0, eni: false, ip: "10.77.1.10" },
  { ns: "x", name: "b", labels: { app: "b" }, node: 1, eni: false, ip: "10.77.2.11" },
  { ns: "y", name: "a", labels: { app: "a" }, node: 1, eni: false, ip: "10.77.2.12" },
  { ns: "y", name: "c", labels: { app: "c" }, node: 0, eni: true, ip: "10.77.1.13" },
  { ns: "z", name: "d", labels: { app: "d" }, node: 0, eni: false, ip: "10.77.1.14" },
  { ns: "z", name: "e", labels: { app: "e" }, node: 1, eni: true, ip: "10.77.2.15" },
].map((p, i) => ({ ...p, containerId: `${process.pid.toString(16)}c0ffee${i}`.padEnd(64, "0") }));

const key = (p: TestPod): string => `${p.ns}/${p.name}`;

describe("NetworkPolicy truth tables: real API server, real nftables, real traffic", { skip: skip ?? false }, () => {
  let cp: ControlPlane;
  const nodes: Array<{ name: string; path: string }> = [];
  const engines: PolicyEngine[] = [];
  /** Each node's agent metrics (the drop counters). */
  const metrics: Metrics[] = [];
  const servers: ChildProcess[] = [];
  const dirs: string[] = [];

  const engineFor = (i: number): PolicyEngine => engines[i]!;
  const nftOn = (i: number) => (script: string, netns: string) =>
    nftApply(script, netns === HOST ? nodes[i]!.path : netns);
  let accessOf: ConstructorParameters<typeof PolicyEngine>[0]["access"];

  function newEngine(i: number, access: typeof accessOf, dir: string): PolicyEngine {
    return new PolicyEngine({
      access,
      kube: new Kube(nodeFetch({ caCert: cp.caFile }), access),
      log: nullLogger,
      metrics: (metrics[i] = new Metrics()),
      dir,
      // The node's own namespace is this node's netns; a pod's, its path.
      nft: nftOn(i),
      list: (netns) => nftListTable("inet", "tcnp_policy", netns === HOST ? nodes[i]!.path : netns),
      nodeAddresses: () => [`192.168.77.${i + 1}`],
      gone: (t) =>
        t.podNetns !== undefined
          ? !fs.existsSync(t.podNetns)
          : !nsExec(nodes[i]!.name, ["ip", "link", "show", "dev", t.hostVeth ?? "-"], { allowFail: true }).ok,
    });
  }

  async function addPod(p: TestPod, opts: { beforeVeth?: () => Promise<void>; engine?: "none" } = {}): Promise<void> {
    p.netns = addNetns(`p${p.ns}${p.name}`);
    const node = nodes[p.node]!;
    const veth = hostVethName(p.containerId, "eth0");
    const target: PolicyTarget = {
      containerId: p.containerId,
      namespace: p.ns,
      name: p.name,
      ips: [],
      ...(p.eni ? { podNetns: p.netns.path } : { hostVeth: veth }),
    };
    // As the agent does: the rules first, then the interface.
    if (opts.engine !== "none") await engineFor(p.node).attach(target);
    await opts.beforeVeth?.();
    const ip = (argv: string[], ns: string): void => void nsExec(ns, ["ip", ...argv]);
    ip(["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", p.netns.name], node.name);
    ip(["link", "set", veth, "up"], node.name);
    nsExec(node.name, ["sysctl", "-qw", `net.ipv4.conf.${veth}.proxy_arp=1`]);
    ip(["route", "add", `${p.ip}/32`, "dev", veth], node.name);
    ip(["link", "set", "lo", "up"], p.netns.name);
    ip(["addr", "add", `${p.ip}/32`, "dev", "eth0"], p.netns.name);
    ip(["link", "set", "eth0", "up"], p.netns.name);
    ip(["route", "add", "169.254.1.1", "dev", "eth0"], p.netns.name);
    ip(["route", "add", "default", "via", "169.254.1.1"], p.netns.name);
    if (opts.engine !== "none") engineFor(p.node).addresses(p.containerId, [p.ip]);
    for (const port of [80, 81]) {
      const s = spawn(
        "ip",
        ["netns", "exec", p.netns.name, "socat", `TCP-LISTEN:${port},fork,reuseaddr`, "SYSTEM:echo ok"],
        {
          stdio: "ignore",
        },
      );
      servers.push(s);
    }
    await cp.api(
      "PATCH",
      `/api/v1/namespaces/${p.ns}/pods/${p.name}/status`,
      { status: { podIP: p.ip, podIPs: [{ ip: p.ip }] } },
      "application/merge-patch+json",
    );
  }

  function createPodObject(p: TestPod): Promise<unknown> {
    return cp.api("POST", `/api/v1/namespaces/${p.ns}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: p.name, labels: p.labels },
      spec: {
        nodeName: `node${p.node}`,
        automountServiceAccountToken: false,
        containers: [{ name: "c", image: "k8s.gcr.io/pause:3.2", ports: [{ name: "web", containerPort: 81 }] }],
      },
    });
  }

  const probe = (from: TestPod, to: TestPod, port: number): Promise<boolean> =>
    new Promise((resolve) => {
      const c = spawn("ip", ["netns", "exec", from.netns!.name, "nc", "-z", "-w", "1", to.ip, String(port)], {
        stdio: "ignore",
      });
      c.on("exit", (code) => resolve(code === 0));
    });

  /** The whole matrix on one port: "from→to" for each pair that connects. */
  async function matrix(port: number): Promise<string[]> {
    const pairs = PODS.flatMap((f) => PODS.filter((t) => t !== f).map((t) => [f, t] as const));
    const ok = await Promise.all(pairs.map(([f, t]) => probe(f, t, port)));
    return pairs.filter((_, i) => ok[i]).map(([f, t]) => `${key(f)}→${key(t)}`);
  }

  const all = (pred: (f: TestPod, t: TestPod) => boolean): string[] =>
    PODS.flatMap((f) => PODS.filter((t) => t !== f && pred(f, t)).map((t) => `${key(f)}→${key(t)}`));

  async function expectMatrix(port: number, want: string[], what: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    let got: string[] = [];
    while (Date.now() < deadline) {
      got = await matrix(port);
      if (JSON.stringify(got) === JSON.stringify(want)) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.deepEqual(got, want, what);
  }

  const applyPolicies = (yaml: string): void => void cp.kubectl(["apply", "-f", "-"], yaml);
  const deletePolicies = (): void => {
    for (const ns of ["x", "y", "z"]) cp.kubectl(["delete", "networkpolicy", "--all", "-n", ns]);
  };

  before(async () => {
    cp = await startControlPlane();
    cp.kubectl(["apply", "--server-side", "-k", path.join(repoRoot, "deploy", "kubernetes", "base")]);
    // (JSON: in YAML 1.1 a namespace called y would read as true)
    const labels: Record<string, Record<string, string>> = {
      x: { ns: "x" },
      y: { ns: "y", team: "blue" },
      z: { ns: "z", team: "red" },
    };
    for (const [name, l] of Object.entries(labels))
      cp.kubectl(
        ["apply", "-f", "-"],
        JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels: l } }),
      );
    // The API's ServiceAccount admission wants each namespace's default account (no controller-manager here).
    for (const n of ["x", "y", "z"]) cp.kubectl(["create", "serviceaccount", "default", "-n", n]);
    for (const p of PODS) await createPodObject(p);
    const token = await cp.serviceAccountToken("tcnp-system", "tcnp-node");
    const access = { apiUrl: cp.url, tokenFile: token, caCert: cp.caFile };
    accessOf = access;
    for (const i of [0, 1]) {
      const n = addNetns(`node${i}`);
      nodes.push(n);
      nsExec(n.name, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      nsExec(n.name, ["ip", "link", "set", "lo", "up"]);
      // The pods' gateway: a node address, so the node answers ARP for it on every veth.
      nsExec(n.name, ["ip", "addr", "add", "169.254.1.1/32", "dev", "lo"]);
    }
    nsExec(nodes[0]!.name, [
      "ip",
      "link",
      "add",
      "up0",
      "type",
      "veth",
      "peer",
      "name",
      "up1",
      "netns",
      nodes[1]!.name,
    ]);
    for (const i of [0, 1]) {
      const n = nodes[i]!.name;
      nsExec(n, ["ip", "addr", "add", `192.168.77.${i + 1}/30`, "dev", `up${i}`]);
      nsExec(n, ["ip", "link", "set", `up${i}`, "up"]);
      nsExec(n, ["ip", "route", "add", `10.77.${2 - i}.0/24`, "via", `192.168.77.${2 - i}`]);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-policy-"));
      dirs.push(dir);
      const engine = newEngine(i, access, dir);
      await engine.start();
      engines.push(engine);
    }
    for (const p of PODS) await addPod(p);
  });

  after(async () => {
    for (const e of engines) e.stop();
    for (const s of servers) s.kill();
    cleanupNamespaces();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    await cp?.stop();
  });

  it("no policy: every pod reaches every other, on both nodes and both kinds of pod", async () => {
    await expectMatrix(
      80,
      all(() => true),
      "no policy",
    );
  });

  it("default deny ingress in x: nothing reaches x's pods; everything else still flows", async () => {
    applyPolicies(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec: {podSelector: {}}
`);
    await expectMatrix(
      80,
      all((_, t) => t.ns !== "x"),
      "deny ingress in x",
    );
    deletePolicies();
    await expectMatrix(
      80,
      all(() => true),
      "the policy deleted",
    );
  });

  it("namespaceSelector AND podSelector in one peer; a second peer ORs; a second policy adds up", async () => {
    applyPolicies(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-blue-c, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: blue}}
      podSelector: {matchLabels: {app: c}}
    - podSelector: {matchExpressions: [{key: app, operator: In, values: [b]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-red, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress:
  - from:
    - namespaceSelector: {matchExpressions: [{key: team, operator: NotIn, values: [blue]}, {key: team, operator: Exists}]}
      podSelector: {matchLabels: {app: e}}
`);
    const allowedToXA = new Set(["y/c", "x/b", "z/e"]);
    await expectMatrix(
      80,
      all((f, t) => key(t) !== "x/a" || allowedToXA.has(key(f))),
      "selectors",
    );
    deletePolicies();
  });

  it("egress: deny in y except to an ipBlock less an exception; replies to allowed connections pass", async () => {
    applyPolicies(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: out, namespace: "y"}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.77.1.0/24, except: [10.77.1.14/32]}
`);
    await expectMatrix(
      80,
      all((f, t) => f.ns !== "y" || (t.ip.startsWith("10.77.1.") && t.ip !== "10.77.1.14")),
      "egress ipBlock",
    );
    deletePolicies();
  });

  it("ports: a named port (on the listening pod) and a range; other ports and UDP stay closed", async () => {
    applyPolicies(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-only, namespace: z}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: web}]
`);
    await expectMatrix(
      80,
      all((_, t) => t.ns !== "z"),
      "port 80 closed in z",
    );
    await expectMatrix(
      81,
      all(() => true),
      "the named port 81 open in z",
    );
    deletePolicies();
  });

  it("the doctor's view: the policies that select a pod, what they allow, drops, and a rule removed by hand", async () => {
    applyPolicies(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-from-b, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [{port: 80}]}]
`);
    const xa = PODS[0]!;
    await expectMatrix(
      80,
      all((f, t) => key(t) !== "x/a" || key(f) === "x/b"),
      "x/a from x/b only",
    );
    const v = await engineFor(0).view(xa.containerId);
    assert.ok(v !== undefined);
    assert.deepEqual(v.ingress.policies, ["x/a-from-b"]);
    assert.deepEqual(v.ingress.rules, ["ip saddr { 10.77.2.11 } meta l4proto tcp th dport 80 return", "counter drop"]);
    assert.deepEqual(v.egress.policies, []);
    assert.deepEqual(v.drift, []);
    assert.ok(
      !("error" in v.kernel) && (v.kernel.ingress?.drops ?? 0) > 0,
      "the probes from other pods were counted as drops",
    );
    // The metrics' pass reads the same counters: x/a's ingress drops, per pod.
    await engineFor(0).countDrops();
    const dropped = metrics[0]!.get("tcnp_agent_policy_dropped_packets", { pod: "x/a", direction: "ingress" }) ?? 0;
    assert.ok(
      !("error" in v.kernel) && dropped >= (v.kernel.ingress?.drops ?? 0) && dropped > 0,
      `dropped-packets metric ${dropped}, kernel ${JSON.stringify(v.kernel)}`,
    );
    // Someone flushes the pod's chain by hand: the doctor names it.
    nsExec(nodes[0]!.name, [
      "nft",
      "flush",
      "chain",
      "inet",
      "tcnp_policy",
      `${hostVethName(xa.containerId, "eth0")}-in`,
    ]);
    const w = await engineFor(0).view(xa.containerId);
    assert.deepEqual(w?.drift, ["ingress: the kernel's chain has 0 rules, the policies make 2"]);
    // An eni pod's node side: z/e, on the other node, gets a veth to its node; what it sends by it
    // to x/a (isolated, on node 0) is judged at the source (its svc chain). Emptied by hand: named.
    const ze = PODS[5]!;
    const zveth = "tcnpdoctor0";
    await engineFor(1).attach({
      containerId: ze.containerId,
      namespace: ze.ns,
      name: ze.name,
      ips: [],
      hostVeth: zveth,
    });
    const z = await engineFor(1).view(ze.containerId);
    assert.deepEqual(z?.drift, []);
    const svcRules = z !== undefined && !("error" in z.kernel) ? (z.kernel.svc?.rules ?? 0) : 0;
    assert.ok(svcRules > 0, `z/e's svc chain judges x/a: ${JSON.stringify(z?.kernel)}`);
    nsExec(nodes[1]!.name, ["nft", "flush", "chain", "inet", "tcnp_policy", `${zveth}-svc`]);
    const z2 = await engineFor(1).view(ze.containerId);
    assert.deepEqual(z2?.drift, [
      `Services judged at the source (${zveth}-svc): the kernel's chain has 0 rules, the policies make ${svcRules}`,
    ]);
    deletePolicies();
  });

  it("without the agent a new pod is isolated (the plugin path records it); the agent, back, applies its rules", async () => {
    const p: TestPod = {
      ns: "z",
      name: "noagent",
      labels: { app: "noagent" },
      node: 0,
      eni: false,
      ip: "10.77.1.60",
      containerId: `${process.pid.toString(16)}deaf`.padEnd(64, "0"),
    };
    await createPodObject(p);
    engineFor(0).stop();
    // What a plugin process does when no agent answers: record and isolate, then the interface.
    const veth = hostVethName(p.containerId, "eth0");
    const isolated = await isolateWithoutAgent(
      { containerId: p.containerId, namespace: p.ns, name: p.name, ips: [], hostVeth: veth },
      { dir: dirs[0]!, nft: nftOn(0) },
    );
    assert.equal(isolated, true, "the node enforces policy: the plugin path isolates");
    await addPod(p, { engine: "none" });
    addressesWithoutAgent(p.containerId, [p.ip], dirs[0]!);
    const peer = PODS.find((q) => q.ns === "z" && q.node === 1)!;
    assert.equal(await probe(peer, p, 80), false, "an isolated pod was reached");
    // The agent comes back: it reads the record and, no policy selecting the pod, opens it.
    const again = newEngine(0, accessOf, dirs[0]!);
    await again.start();
    engines[0] = again;
    const deadline = Date.now() + 15_000;
    while (!(await probe(peer, p, 80)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 300));
    assert.equal(await probe(peer, p, 80), true, "the agent did not open the pod it found recorded");
    // Its DEL on the plugin path takes its chains and record away.
    await forgetWithoutAgent(p.containerId, { dir: dirs[0]!, nft: nftOn(0) });
    assert.equal(fs.existsSync(path.join(dirs[0]!, `${p.containerId}.json`)), false);
    const t = JSON.stringify(await nftListTable("inet", "tcnp_policy", nodes[0]!.path));
    assert.equal(t.includes(`${veth}-in`), false, "the pod's chain stayed");
  });

  it("no packet reaches a new pod before its rules exist (deny-all namespace, a sender flooding its address)", async () => {
    applyPolicies(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec: {podSelector: {}}
`);
    await expectMatrix(
      80,
      all((_, t) => t.ns !== "x"),
      "deny ingress in x",
    );
    const race = async (ns: "x" | "z", ip: string, n: number): Promise<number> => {
      const p: TestPod = {
        ns,
        name: `new${n}`,
        labels: { app: "new" },
        node: 0,
        eni: n % 2 === 1,
        ip,
        containerId: `${process.pid.toString(16)}beef${n}`.padEnd(64, "0"),
      };
      await createPodObject(p);
      const file = path.join(dirs[0]!, `recv-${n}`);
      let recv: ChildProcess | undefined;
      const sender = PODS.find((q) => q.ns === "y" && q.node === 1)!;
      const flood = spawn(
        "ip",
        [
          "netns",
          "exec",
          sender.netns!.name,
          "sh",
          "-c",
          `while :; do echo x | socat -u - UDP:${ip}:5000 2>/dev/null; done`,
        ],
        { stdio: "ignore" },
      );
      try {
        await addPod(p, {
          beforeVeth: async () => {
            // The pod's process listens before its interface exists: anything that passes reaches it.
            recv = spawn("ip", ["netns", "exec", p.netns!.name, "socat", "-u", "UDP-RECV:5000", `CREATE:${file}`], {
              stdio: "ignore",
            });
            await new Promise((r) => setTimeout(r, 300));
          },
        });
        await new Promise((r) => setTimeout(r, 1500));
      } finally {
        flood.kill();
        recv?.kill();
      }
      return fs.existsSync(file) ? fs.statSync(file).size : 0;
    };
    assert.equal(await race("x", "10.77.1.50", 0), 0, "a mix pod under deny-all received packets");
    assert.equal(await race("x", "10.77.1.51", 1), 0, "an eni pod under deny-all received packets");
    // The same race in a namespace without policy: packets do arrive (the test can see them).
    assert.ok((await race("z", "10.77.1.52", 2)) > 0, "a pod without policy received nothing: the probe is blind");
    const t = (await nftListTable("inet", "tcnp_policy", nodes[0]!.path)) as {
      nftables: Array<{ rule?: { chain: string; expr: Array<{ counter?: { packets: number } }> } }>;
    };
    const drops = t.nftables
      .filter((o) => o.rule?.chain === `${hostVethName(`${process.pid.toString(16)}beef0`.padEnd(64, "0"), "eth0")}-in`)
      .flatMap((o) => o.rule!.expr)
      .find((e) => e.counter !== undefined);
    assert.ok((drops?.counter?.packets ?? 0) > 0, "the new pod's drop counter counted the flood");
    deletePolicies();
  });
});
