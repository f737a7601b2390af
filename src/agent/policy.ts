// NetworkPolicy in the node agent: caches of the cluster's NetworkPolicies, Pods and Namespaces
// (list+watch), and for each pod attached on this node its nftables rules (src/policy/nft.ts),
// recomputed on every change and applied only where the rules differ. A pod's ADD answers only once
// its rules are in the kernel: no packet of a new pod passes before its policy does.
//
// When the agent cannot learn a new pod's labels (no first list yet, the API server unreachable and
// the pod not in the cache), the pod is isolated both ways (fail closed) until it can: only its node
// reaches it. Pods already known keep the rules of the last state seen.
import * as fs from "node:fs";
import * as path from "node:path";
import { inform, type Informer } from "../controller/informer.js";
import type { Kube, KubeAccess } from "../controller/kube.js";
import type { Metrics } from "../controller/metrics.js";
import { HOST } from "../kernel/types.js";
import type { NftLister, NftRunner } from "../kernel/nft.js";
import type { Logger } from "../log/logger.js";
import { judgedAtSource, podPolicy, type PodPolicy, type World } from "../policy/compute.js";
import { parseNamespace, parsePod, parsePolicy, type Namespace, type Pod, type Policy } from "../policy/model.js";
import {
  chainRules,
  hostBase,
  hostNodesScript,
  hostPodRemoval,
  judgedRules,
  TABLE,
  type SetNamer,
} from "../policy/nft.js";
import { isSharedSet, SharedSets } from "../policy/sets.js";
import { writeFileAtomic } from "../state/files.js";
import { DENY_ALL, ENFORCING, localAddresses, podScripts, type PolicyTarget } from "./policy-node.js";

export type { PolicyTarget } from "./policy-node.js";

/** The #applied key of the node addresses' script (container IDs are hex: no clash). */
const NODES = "(nodes)";

/**
 * A pod's chains as the kernel holds them. eni pods: `ingress`/`egress` in the pod's own table,
 * `nodeEgress`/`svc` on the node for what it sends by its veth.
 */
type KernelChains = Partial<Record<"ingress" | "egress" | "nodeEgress" | "svc", { rules: number; drops: number }>>;

export interface PolicyView {
  pod: string;
  ips: string[];
  /** false: the agent does not know the pod's labels; it is isolated both ways until it does. */
  known: boolean;
  ingress: { policies: string[]; rules: string[] };
  egress: { policies: string[]; rules: string[] };
  kernel: KernelChains | { error: string };
  drift: string[];
}

const SYNC_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface PolicyEngineOptions {
  access: KubeAccess;
  kube: Kube;
  log: Logger;
  metrics: Metrics;
  dir: string;
  nft: NftRunner;
  /** The policy table as nft's JSON (for the doctor and the drop counters). */
  list?: NftLister;
  nodeAddresses?: () => string[];
  /** Whether a pod's attachment is gone (its namespace or host veth); default: this node's kernel. */
  gone?: (t: PolicyTarget) => boolean;
  /** How long an ADD waits for the first list before it isolates the pod (ms). */
  syncWaitMs?: number;
}

export class PolicyEngine {
  readonly #o: PolicyEngineOptions;
  readonly #targets = new Map<string, PolicyTarget>();
  readonly #applied = new Map<string, string>();
  readonly #sets = new SharedSets();
  #swept = false;
  /** Shared sets to delete (src/policy/sets.ts), kept while a chain still names them. */
  readonly #unused = new Set<string>();
  /** When each target was first seen by a reconcile (a young one may not have its interface yet). */
  readonly #seen = new Map<string, number>();
  #policies?: Informer<Policy>;
  #pods?: Informer<Pod>;
  #namespaces?: Informer<Namespace>;
  #timer: NodeJS.Timeout | undefined;
  #pendingSince: number | undefined;
  #running: Promise<void> = Promise.resolve();

  constructor(o: PolicyEngineOptions) {
    this.#o = o;
  }

  async start(): Promise<void> {
    const { access, log } = this.#o;
    fs.mkdirSync(this.#o.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(path.join(this.#o.dir, ENFORCING), "1\n", { durable: false });
    for (const f of fs.readdirSync(this.#o.dir)) {
      if (!f.endsWith(".json")) continue;
      try {
        const t = JSON.parse(fs.readFileSync(path.join(this.#o.dir, f), "utf8")) as PolicyTarget;
        this.#targets.set(t.containerId, t);
      } catch (e) {
        log.warn("cannot read a policy record", { file: f, error: e });
      }
    }
    await this.#o.nft(hostBase(), HOST);
    const changed = (): void => {
      this.#worldCache = undefined;
      this.#schedule();
    };
    this.#policies = inform(access, "/apis/networking.k8s.io/v1/networkpolicies", parsePolicy, changed, log);
    this.#pods = inform(access, "/api/v1/pods", parsePod, changed, log);
    this.#namespaces = inform(access, "/api/v1/namespaces", parseNamespace, changed, log);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#policies?.stop();
    this.#pods?.stop();
    this.#namespaces?.stop();
  }

  #synced(): boolean {
    return (
      (this.#policies?.isSynced() ?? false) &&
      (this.#pods?.isSynced() ?? false) &&
      (this.#namespaces?.isSynced() ?? false)
    );
  }

  // The world as last built: kept until the caches or the local pods' addresses change, so that
  // the selections computed for one pod serve the next (a burst of ADDs computes them once).
  #worldCache: World | undefined;

  #world(): World {
    return (this.#worldCache ??= this.#buildWorld());
  }

  #buildWorld(): World {
    const local = new Map([...this.#targets.values()].map((t) => [`${t.namespace}/${t.name}`, t]));
    const pods = (this.#pods?.items() ?? []).map((p) => {
      const t = local.get(`${p.namespace}/${p.name}`);
      return t !== undefined && p.ips.length === 0 ? { ...p, ips: t.ips } : p;
    });
    return {
      policies: this.#policies?.items() ?? [],
      pods,
      namespaces: new Map((this.#namespaces?.items() ?? []).map((n) => [n.name, n])),
    };
  }

  /** What the policies allow a local pod now, or undefined when its labels are not known. */
  policyOf(t: PolicyTarget, world?: World): PodPolicy | undefined {
    const pod = this.#pods?.get(`${t.namespace}/${t.name}`);
    if (pod === undefined || !this.#synced()) return undefined;
    return podPolicy({ ...pod, ips: t.ips }, world ?? this.#world());
  }

  /** The cluster's node addresses, as the pods' status tells them. */
  #nodes(world: World): string[] {
    return [...new Set(world.pods.flatMap((p) => (p.hostIp === undefined ? [] : [p.hostIp])))].sort();
  }

  #scripts(
    t: PolicyTarget,
    p: PodPolicy,
    world: World | undefined,
    named: SetNamer,
  ): Array<{ netns: string; script: string }> {
    const cluster: { svc?: string[]; nodes?: string[]; named: SetNamer } = { named };
    if (world !== undefined && t.podNetns !== undefined) {
      cluster.nodes = this.#nodes(world);
      const svc = this.#svcRules(t, p, world);
      // An empty chain is removed only if there is one (see hostPodScript).
      if (svc.length > 0 || (this.#applied.get(t.containerId)?.includes(`${t.hostVeth}-svc`) ?? false))
        cluster.svc = svc;
    }
    return podScripts(t, p, (this.#o.nodeAddresses ?? localAddresses)(), cluster);
  }

  /**
   * What an eni pod sends by its veth to pods on other nodes leaves masqueraded: judged on this
   * node against those pods' ingress (the `svc` chain's rules; none for a pod without a veth).
   */
  #svcRules(t: PolicyTarget, p: PodPolicy, world: World): string[] {
    const pod = this.#pods?.get(`${t.namespace}/${t.name}`);
    if (t.podNetns === undefined || t.hostVeth === undefined || pod === undefined || p === DENY_ALL) return [];
    const local = new Set([...this.#targets.values()].flatMap((x) => x.ips));
    return judgedRules(judgedAtSource({ ...pod, ips: t.ips }, world, (d) => !d.ips.some((ip) => local.has(ip))));
  }

  async #applyNodes(world: World): Promise<void> {
    const script = hostNodesScript(this.#nodes(world));
    if (this.#applied.get(NODES) === script) return;
    await this.#o.nft(script, HOST);
    this.#applied.set(NODES, script);
  }

  async #apply(t: PolicyTarget, p: PodPolicy, world?: World): Promise<boolean> {
    const { named, wanted } = this.#sets.namer();
    const scripts = this.#scripts(t, p, world, named);
    const text = JSON.stringify(scripts);
    if (this.#applied.get(t.containerId) === text) return false;
    const plan = this.#sets.plan(t.containerId, wanted);
    for (const s of scripts) await this.#o.nft(s.netns === HOST ? plan.before + s.script : s.script, s.netns);
    if (!scripts.some((s) => s.netns === HOST) && plan.before !== "") await this.#o.nft(plan.before, HOST);
    plan.commit();
    this.#applied.set(t.containerId, text);
    await this.#dropSets(plan.gone);
    return true;
  }

  /** A pod's chains on the node go, with the shared sets only they named. */
  async #removeHost(t: PolicyTarget): Promise<void> {
    const plan = this.#sets.plan(t.containerId, new Map());
    if (t.hostVeth !== undefined) await this.#o.nft(hostPodRemoval(t.hostVeth), HOST);
    plan.commit();
    await this.#dropSets(plan.gone);
  }

  /**
   * Deletes shared sets no chain of this agent names any more, in their own transaction: a chain
   * this agent has not rewritten yet (an earlier agent's, for a pod not in the cache) may still
   * name one, and the kernel refuses to delete it then. Such sets are tried again at the next
   * reconcile (unless named again meanwhile).
   */
  async #dropSets(names: readonly string[]): Promise<void> {
    for (const n of names) this.#unused.add(n);
    const todo = [...this.#unused].filter((n) => !this.#sets.known(n));
    for (const n of [...this.#unused]) if (this.#sets.known(n)) this.#unused.delete(n);
    if (todo.length === 0) return;
    const del = (ns: readonly string[]): string => ns.map((n) => `delete set inet ${TABLE} ${n}\n`).join("");
    try {
      await this.#o.nft(del(todo), HOST);
      for (const n of todo) this.#unused.delete(n);
    } catch {
      for (const n of todo)
        await this.#o.nft(del([n]), HOST).then(
          () => this.#unused.delete(n),
          () => {},
        );
    }
  }

  /**
   * Shared sets in the kernel that no chain of this agent names (left by an agent before it, whose
   * chains this one has replaced): deleted once, after the first reconcile.
   */
  async #sweep(): Promise<void> {
    const list = this.#o.list;
    if (list === undefined) return;
    const json = (await list(HOST)) as { nftables?: Array<{ set?: { name: string } }> } | undefined;
    const stale = (json?.nftables ?? [])
      .map((i) => i.set?.name)
      .filter((n): n is string => n !== undefined && isSharedSet(n) && !this.#sets.known(n));
    // One by one: a set a chain still names (a pod not reapplied yet) stays, the others go.
    for (const n of stale) await this.#o.nft(`delete set inet ${TABLE} ${n}\n`, HOST).catch(() => {});
  }

  /**
   * A pod's attachment on this node (the attach plugins' ADD): its rules are in the kernel when this
   * resolves. eni pods come in two steps (the NIC, then the veth), merged by container ID.
   */
  async attach(part: PolicyTarget): Promise<void> {
    const before = this.#targets.get(part.containerId);
    const t: PolicyTarget = { ...before, ...part, ips: part.ips.length > 0 ? part.ips : (before?.ips ?? []) };
    this.#targets.set(t.containerId, t);
    writeFileAtomic(path.join(this.#o.dir, `${t.containerId}.json`), JSON.stringify(t), { durable: false });
    await this.#serialised(async () => {
      if (!this.#synced()) {
        const wait = this.#o.syncWaitMs ?? 5000;
        await Promise.race([
          Promise.all([this.#policies?.synced, this.#pods?.synced, this.#namespaces?.synced]),
          new Promise((r) => setTimeout(r, wait).unref()),
        ]);
      }
      const world = this.#synced() ? this.#world() : undefined;
      let p = this.policyOf(t, world);
      if (p === undefined && world !== undefined) {
        // The pod is newer than the cache: ask for it (the watch brings it soon after).
        try {
          const pod = parsePod(await this.#o.kube.getJson(`/api/v1/namespaces/${t.namespace}/pods/${t.name}`));
          p = podPolicy({ ...pod, ips: t.ips }, world);
        } catch (e) {
          this.#o.log.warn("cannot learn a new pod's labels: isolating it until the agent can", {
            pod: `${t.namespace}/${t.name}`,
            error: e,
          });
        }
      }
      await this.#apply(t, p ?? DENY_ALL, world);
    });
  }

  addresses(containerId: string, ips: readonly string[]): void {
    const t = this.#targets.get(containerId);
    if (t === undefined || ips.length === 0 || JSON.stringify(t.ips) === JSON.stringify(ips)) return;
    t.ips = [...ips];
    this.#worldCache = undefined;
    writeFileAtomic(path.join(this.#o.dir, `${t.containerId}.json`), JSON.stringify(t), { durable: false });
    this.#schedule();
  }

  /** A pod's attachment is gone (DEL): its rules on the node go with it. */
  async detach(containerId: string): Promise<void> {
    const t = this.#targets.get(containerId);
    if (t === undefined) return;
    await this.#serialised(async () => {
      await this.#removeHost(t);
      this.#targets.delete(containerId);
      this.#worldCache = undefined;
      this.#applied.delete(containerId);
      fs.rmSync(path.join(this.#o.dir, `${containerId}.json`), { force: true });
    });
  }

  /**
   * What the doctor shows: the policies that select the pod, the rules they make, and what the
   * kernel holds (rule counts, drops), with every difference named.
   */
  async view(containerId: string): Promise<PolicyView | undefined> {
    const t = this.#targets.get(containerId);
    if (t === undefined) return undefined;
    const p = this.policyOf(t);
    const want = p ?? DENY_ALL;
    const rules = { ingress: chainRules(want.ingress, "ingress"), egress: chainRules(want.egress, "egress") };
    const kernel = await this.#kernelChains(t).catch((e: unknown) => ({
      error: e instanceof Error ? e.message : String(e),
    }));
    const drift: string[] = [];
    // What each chain should hold: an eni pod's node side too (its egress by the veth, and the
    // remote servers' ingress judged here when the agent knows the cluster).
    const expected: Array<[keyof KernelChains, string, number]> = [
      ["ingress", "ingress", rules.ingress.length],
      ["egress", "egress", rules.egress.length],
    ];
    if (t.podNetns !== undefined && t.hostVeth !== undefined) {
      expected.push(["nodeEgress", `egress on the node (${t.hostVeth}-out)`, rules.egress.length]);
      const svc = p !== undefined && this.#synced() ? this.#svcRules(t, p, this.#world()).length : undefined;
      // No chain when there is nothing to judge (see hostPodScript).
      if (svc !== undefined && svc > 0)
        expected.push(["svc", `Services judged at the source (${t.hostVeth}-svc)`, svc]);
      else if (svc === 0 && !("error" in kernel) && kernel.svc !== undefined)
        drift.push(
          `Services judged at the source (${t.hostVeth}-svc): a chain with ${kernel.svc.rules} rules, the policies make none`,
        );
    }
    if ("error" in kernel) drift.push(`cannot read the kernel's rules: ${kernel.error}`);
    else
      for (const [key, what, n] of expected) {
        const k = kernel[key];
        if (k === undefined) drift.push(`${what}: no chain in the kernel (${n} rules expected)`);
        else if (k.rules !== n) drift.push(`${what}: the kernel's chain has ${k.rules} rules, the policies make ${n}`);
      }
    return {
      pod: `${t.namespace}/${t.name}`,
      ips: t.ips,
      known: p !== undefined,
      ingress: { policies: want.ingress.policies, rules: rules.ingress },
      egress: { policies: want.egress.policies, rules: rules.egress },
      kernel,
      drift,
    };
  }

  // The pod's chains as the kernel holds them: rule counts and the drop counter of each direction.
  // `hostTable`: the node's table as read once for several pods (the metrics' pass).
  async #kernelChains(t: PolicyTarget, hostTable?: () => Promise<unknown>): Promise<KernelChains> {
    const list = this.#o.list;
    if (list === undefined) return {};
    const host = hostTable ?? (() => list(HOST));
    const out: KernelChains = {};
    const read = (json: unknown, names: Partial<Record<keyof KernelChains, string>>): void => {
      const items =
        (
          json as {
            nftables?: Array<{
              rule?: { chain: string; expr: Array<{ counter?: { packets: number } }> };
              chain?: { name: string };
            }>;
          }
        )?.nftables ?? [];
      for (const [dir, name] of Object.entries(names) as Array<[keyof KernelChains, string]>) {
        if (!items.some((i) => i.chain?.name === name)) continue;
        const rs = items.filter((i) => i.rule?.chain === names[dir]).map((i) => i.rule!);
        const drops = rs.flatMap((r) => r.expr).find((e) => e.counter !== undefined)?.counter?.packets ?? 0;
        out[dir] = { rules: rs.length, drops };
      }
    };
    if (t.podNetns !== undefined) {
      read(await list(t.podNetns), { ingress: "pod_in", egress: "pod_out" });
      if (t.hostVeth !== undefined) read(await host(), { nodeEgress: `${t.hostVeth}-out`, svc: `${t.hostVeth}-svc` });
    } else if (t.hostVeth !== undefined) {
      read(await host(), { ingress: `${t.hostVeth}-in`, egress: `${t.hostVeth}-out` });
    }
    return out;
  }

  /** Drops per pod, for the metrics (read from the kernel's counters). */
  async countDrops(): Promise<void> {
    // The node's table once for the whole pass: every pod's chains on the node are in it.
    let table: Promise<unknown> | undefined;
    const list = this.#o.list;
    const hostTable = (): Promise<unknown> => (table ??= list?.(HOST) ?? Promise.resolve(undefined));
    for (const t of this.#targets.values()) {
      const k = await this.#kernelChains(t, hostTable).catch(() => ({}) as KernelChains);
      // An eni pod's egress is judged in its namespace and, for what it sends by its veth, on the node.
      const nodeSide = (k.nodeEgress?.drops ?? 0) + (k.svc?.drops ?? 0);
      if (k.egress !== undefined) k.egress = { ...k.egress, drops: k.egress.drops + nodeSide };
      for (const dir of ["ingress", "egress"] as const) {
        const c = k[dir];
        if (c !== undefined)
          this.#o.metrics.set(
            "tcnp_agent_policy_dropped_packets",
            "Packets a pod's NetworkPolicy dropped (kernel counter)",
            c.drops,
            {
              pod: `${t.namespace}/${t.name}`,
              direction: dir,
            },
          );
      }
    }
  }

  targets(): PolicyTarget[] {
    return [...this.#targets.values()];
  }

  // Pods whose DEL this agent never saw (served while it was away, or lost in a crash): their
  // namespace or host veth is gone for a while. Their chains and records go.
  async #prune(): Promise<void> {
    const gone = this.#o.gone ?? defaultGone;
    const now = Date.now();
    for (const t of [...this.#targets.values()]) {
      const since = this.#seen.get(t.containerId) ?? now;
      this.#seen.set(t.containerId, since);
      if (now - since < 60_000 || !gone(t)) continue;
      this.#o.log.info("forgetting the rules of a pod that is gone", { pod: `${t.namespace}/${t.name}` });
      await this.#removeHost(t).catch(() => {});
      this.#targets.delete(t.containerId);
      this.#worldCache = undefined;
      this.#applied.delete(t.containerId);
      this.#seen.delete(t.containerId);
      fs.rmSync(path.join(this.#o.dir, `${t.containerId}.json`), { force: true });
    }
  }

  #serialised(fn: () => Promise<void>): Promise<void> {
    const next = this.#running.then(fn, fn);
    this.#running = next.catch(() => {});
    return next;
  }

  #schedule(): void {
    this.#pendingSince ??= Date.now();
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const since = this.#pendingSince ?? Date.now();
      this.#pendingSince = undefined;
      void this.#serialised(() => this.#reconcile(since));
    }, 10);
  }

  async #reconcile(since: number): Promise<void> {
    if (!this.#synced()) return;
    let changed = 0;
    const world = this.#world();
    await this.#prune();
    try {
      await this.#applyNodes(world);
    } catch (e) {
      this.#o.log.warn("cannot write the cluster's node addresses", { error: e });
    }
    for (const t of this.#targets.values()) {
      const p = this.policyOf(t, world);
      if (p === undefined) continue; // not in the cache yet: keeps what it has
      try {
        if (await this.#apply(t, p, world)) changed++;
      } catch (e) {
        this.#o.log.warn("cannot apply a pod's NetworkPolicy rules", { pod: `${t.namespace}/${t.name}`, error: e });
        this.#o.metrics.inc("tcnp_agent_policy_apply_failures_total", "NetworkPolicy rule updates that failed");
      }
    }
    await this.#dropSets([]).catch(() => {});
    if (!this.#swept) {
      this.#swept = true;
      await this.#sweep().catch((e: unknown) => this.#o.log.warn("cannot sweep stale peer sets", { error: e }));
    }
    if (changed > 0)
      this.#o.metrics.observe(
        "tcnp_agent_policy_sync_seconds",
        "From a change of policies, pods or namespaces to the node's rules updated",
        (Date.now() - since) / 1000,
        SYNC_BUCKETS,
      );
  }
}

function defaultGone(t: PolicyTarget): boolean {
  if (t.podNetns !== undefined) return !fs.existsSync(t.podNetns);
  return t.hostVeth !== undefined && !fs.existsSync(`/sys/class/net/${t.hostVeth}`);
}
