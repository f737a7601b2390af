// One reconcile: read Neutron (the tagged VM ports, block reservations, the router) in a constant
// number of calls, plan the difference within the route limit, and write only the difference —
// add/remove_extraroutes where the extension is advertised, else one PUT guarded by If-Match.
import type { Logger } from "../log/logger.js";
import { isOpenStackError } from "../openstack/errors.js";
import type { Neutron } from "../openstack/neutron.js";
import type { OpenStackSession } from "../openstack/session.js";
import type { Port, Router } from "../openstack/types.js";
import type { Clock } from "../base/clock.js";
import type { ControllerConfig } from "./config.js";
import {
  BLOCK_TAG,
  blockOf,
  clusterOf,
  ENI_POOL_NAME,
  ENI_TAG,
  MIX_TAG,
  nodeIpOf,
  nodeOf,
  serverOf,
} from "../ipam/tags.js";
import type { Nova } from "../openstack/nova.js";
import { desiredRoutes, type DesiredRoute } from "./desired.js";
import type { Metrics } from "./metrics.js";
import { planRoutes, type RoutePlan } from "./plan.js";

export interface PodLocator {
  /** Tell Kubernetes (if any) that these pod addresses have no route. */
  reportMissing(missing: Array<{ ip: string; serverId: string }>, why: string): Promise<void>;
}

/** How often untagged eni pool ports are looked for by name (see #releaseGoneServers). */
const UNTAGGED_CHECK_MS = 60_000;

export interface ReconcileResult {
  desired: number;
  installed: number;
  added: number;
  removed: number;
  /** Pod addresses left without a route. */
  missing: string[];
  apiCalls: number;
  durationMs: number;
  mode: "atomic" | "put";
  limit?: number;
}

export interface ReconcilerDeps {
  cfg: ControllerConfig;
  neutron: Neutron;
  session: OpenStackSession;
  log: Logger;
  clock: Clock;
  metrics: Metrics;
  pods?: PodLocator;
  /** Nova, to release the block reservations of servers that are gone (none: not done). */
  nova?: Nova;
}

/** How often the reservations' owners are looked up in Nova (one GET per node, not per reconcile). */

const M = {
  desired: ["tcnp_router_routes_desired", "Routes the router should hold for mix-mode pods"],
  installed: ["tcnp_router_routes_installed", "Routes of ours the router holds"],
  missing: ["tcnp_pods_without_route", "Pod addresses left without a router route (route limit)"],
  limit: ["tcnp_router_route_limit", "The router's route limit, configured or learnt"],
  calls: ["tcnp_reconcile_neutron_requests", "Neutron API requests the last reconcile made"],
  errors: ["tcnp_reconcile_errors_total", "Reconciles that failed"],
  reconciles: ["tcnp_reconciles_total", "Reconciles run"],
  duration: ["tcnp_reconcile_duration_seconds", "Duration of reconciles"],
  changes: ["tcnp_router_route_changes_total", "Routes added or removed"],
} as const;

const DURATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** "…exceeds the maximum 30." → 30 */
const limitFrom = (detail: string): number | undefined => {
  const m = /maximum (\d+)/.exec(detail);
  return m === null ? undefined : Number(m[1]);
};

export class Reconciler {
  readonly #d: ReconcilerDeps;
  #mode: "atomic" | "put" | undefined;
  #podCidrs: string[] = [];
  #nodeCidrs: string[] = [];
  #limit: number | undefined;
  #lastMissing = "";
  #untaggedCheckedAt = -Infinity;
  /** The server each mix VM port was bound to at the last check. */
  #boundTo = new Map<string, string>();
  /** Next hops of another cluster's nodes (their routes are that cluster's). */
  #foreignHops = new Set<string>();
  /** Servers this cluster's objects named (their untagged leftovers are this cluster's to clean up). */
  readonly #servers = new Set<string>();

  constructor(d: ReconcilerDeps) {
    this.#d = d;
    this.#limit = d.cfg.routeLimit;
  }

  get limit(): number | undefined {
    return this.#limit;
  }

  /** Learn the extension and the CIDRs once (they do not change while we run). */
  async #init(): Promise<void> {
    if (this.#mode !== undefined) return;
    const { cfg, neutron } = this.#d;
    const atomic =
      cfg.apply === "atomic" || (cfg.apply === "auto" && (await neutron.extensions()).has("extraroute-atomic"));
    const subnets = (await Promise.all(cfg.networks.map((n) => neutron.listSubnets({ network_id: n }))))
      .flat()
      .filter((s) => s.ip_version === 4)
      .map((s) => s.cidr);
    this.#podCidrs = cfg.podCidrs ?? subnets;
    this.#nodeCidrs = cfg.nodeCidrs ?? subnets;
    this.#mode = atomic ? "atomic" : "put";
    this.#d.log.info("route controller ready", {
      mode: this.#mode,
      podCidrs: this.#podCidrs,
      nodeCidrs: this.#nodeCidrs,
      limit: this.#limit,
    });
  }

  // What tcnp made for a VM outlives it unless someone lets it go: every reconcile, the servers that
  // tcnp's ports name are looked up in Nova (one list, then a GET for each one missing from it), and for each that is gone (404) its eni ports, eni
  // pool ports and block reservations are deleted, and a mix VM port that outlived it (a port the
  // operator made, which Nova unbinds) loses its pods' and pool's addresses and tcnp's tags, so
  // their routes go in this same reconcile. The server of an unbound port is the one it was bound
  // to at the previous check (a port bound to a server that is gone counts too). Ports tcnp did not tag or name are never looked at; a
  // server Nova cannot answer for (any error but 404) is kept.
  async #releaseGoneServers(
    vmPorts: Port[],
    blockPorts: Port[],
    eniPorts: Port[],
  ): Promise<{ vmPorts: Port[]; blockPorts: Port[] }> {
    const { nova, neutron, log, cfg } = this.#d;
    if (nova === undefined) return { vmPorts, blockPorts };
    // Pool ports whose tags were never written (a create answer lost) are found by name, now and then.
    let poolPorts: Port[] = [];
    if (this.#d.clock.now() - this.#untaggedCheckedAt >= UNTAGGED_CHECK_MS) {
      // Untagged ones say their server only: this cluster's if one of its nodes was that server.
      poolPorts = (await neutron.listPorts({ name: ENI_POOL_NAME })).filter(
        (p) =>
          (p.tags.length === 0 && this.#servers.has(serverOf(p) ?? "")) ||
          (p.tags.length > 0 && clusterOf(p) === cfg.cluster),
      );
      this.#untaggedCheckedAt = this.#d.clock.now();
    }
    const made = [...new Map([...eniPorts, ...poolPorts, ...blockPorts].map((p) => [p.id, p])).values()];
    const owners = new Set<string>();
    for (const p of made) {
      const s = serverOf(p);
      if (s !== undefined) owners.add(s);
    }
    // A mix VM port's server is its device_id, or, once Nova unbound it, the server it had last.
    const ownerOfVm = (p: Port): string | undefined =>
      p.device_id !== "" ? p.device_id : (nodeOf(p) ?? this.#boundTo.get(p.id));
    for (const p of vmPorts) {
      const o = ownerOfVm(p);
      if (o !== undefined) owners.add(o);
    }
    // One list of the servers that exist; only those missing from it are looked up one by one
    // (a 404 confirms it: a server created since the list is found).
    const listed = owners.size === 0 ? new Set<string>() : await nova.listServerIds();
    const gone = new Set<string>();
    for (const server of owners) {
      if (listed.has(server)) continue;
      try {
        await nova.getServer(server);
      } catch (e) {
        if (isOpenStackError(e, undefined, 404)) gone.add(server);
        else throw e;
      }
    }
    const orphanVmPorts = vmPorts.filter((p) => gone.has(ownerOfVm(p) ?? ""));
    // Bound ports: their server now; unbound ones keep the server they had (until released).
    this.#boundTo = new Map(
      vmPorts.flatMap((p): Array<[string, string]> => {
        const o = ownerOfVm(p);
        return o === undefined || orphanVmPorts.includes(p) ? [] : [[p.id, o]];
      }),
    );
    const notFound = (e: unknown): void => {
      if (!isOpenStackError(e, "PortNotFound") && !isOpenStackError(e, undefined, 404)) throw e;
    };
    for (const p of made) {
      const owner = serverOf(p);
      if (owner === undefined || !gone.has(owner) || !cfg.networks.includes(p.network_id)) continue;
      await neutron.deletePort(p.id).catch(notFound);
      log.info("released a port tcnp made for a server that is gone", {
        port: p.id,
        server: owner,
        kind: p.tags.includes(BLOCK_TAG) ? "block" : p.name === ENI_POOL_NAME ? "eni pool" : "eni",
        ...(blockOf(p) === undefined ? {} : { block: blockOf(p) }),
      });
    }
    for (const p of orphanVmPorts) {
      if (!cfg.networks.includes(p.network_id)) continue;
      const nodeIp = nodeIpOf(p);
      const keep = p.fixed_ips.filter((f) => f.ip_address === nodeIp);
      const released = p.fixed_ips.filter((f) => f.ip_address !== nodeIp).map((f) => f.ip_address);
      await neutron
        .updateFixedIps(
          p.id,
          keep.map((f) => ({ subnet_id: f.subnet_id, ip_address: f.ip_address })),
          p.revision_number,
        )
        .catch(notFound);
      await neutron
        .setTags(
          "ports",
          p.id,
          p.tags.filter((t) => !t.startsWith("tcnp")),
        )
        .catch(notFound);
      log.info("released the pod and pool addresses of a VM port whose server is gone", {
        port: p.id,
        server: ownerOfVm(p),
        addresses: released,
      });
    }
    const dropped = new Set([...made.filter((p) => gone.has(serverOf(p) ?? "")), ...orphanVmPorts].map((p) => p.id));
    return {
      vmPorts: vmPorts.filter((p) => !dropped.has(p.id)),
      blockPorts: blockPorts.filter((p) => !dropped.has(p.id)),
    };
  }

  async #read(): Promise<{ router: Router; desired: DesiredRoute[] }> {
    const { cfg, neutron } = this.#d;
    // One list of every port tcnp tagged: VM ports with pods, block reservations, eni ports.
    const [all, router] = await Promise.all([
      neutron.listPorts({ "tags-any": `${MIX_TAG},${BLOCK_TAG},${ENI_TAG}` }),
      neutron.getRouter(cfg.routerId),
    ]);
    // Another cluster's objects in the same project are never this controller's: not its routes'
    // sources, not its to clean up; and a route whose next hop is one of that cluster's nodes is
    // that cluster's route.
    const tagged = all.filter((p) => clusterOf(p) === cfg.cluster);
    this.#foreignHops = new Set(
      all.flatMap((p) => (clusterOf(p) !== cfg.cluster && p.tags.includes(MIX_TAG) ? [nodeIpOf(p) ?? ""] : [])),
    );
    for (const p of tagged) {
      const s = serverOf(p) ?? (p.tags.includes(MIX_TAG) ? p.device_id || nodeOf(p) : undefined);
      if (s !== undefined && s !== "") this.#servers.add(s);
    }
    const kept = await this.#releaseGoneServers(
      tagged.filter((p) => p.tags.includes(MIX_TAG)),
      tagged.filter((p) => p.tags.includes(BLOCK_TAG)),
      tagged.filter((p) => p.tags.includes(ENI_TAG)),
    );
    const blockPorts = kept.blockPorts;
    const desired = desiredRoutes({
      vmPorts: kept.vmPorts.filter((p) => cfg.networks.includes(p.network_id)),
      blockPorts: blockPorts.filter((p) => cfg.networks.includes(p.network_id)),
      podCidrs: this.#podCidrs,
      aggregate: cfg.aggregate,
    });
    return { router, desired };
  }

  #plan(router: Router, desired: DesiredRoute[]): RoutePlan {
    const mine = router.routes.filter((r) => !this.#foreignHops.has(r.nexthop));
    const plan = planRoutes(mine, desired, {
      podCidrs: this.#podCidrs,
      nodeCidrs: this.#nodeCidrs,
      ...(this.#limit === undefined ? {} : { limit: this.#limit - (router.routes.length - mine.length) }),
    });
    return { ...plan, foreign: plan.foreign + (router.routes.length - mine.length) };
  }

  // "ok", or "full" when the router refused for its route limit (the limit is then known, when the
  // error says it), or "full-unknown" (OverQuota does not say how many routes fit).
  async #apply(router: Router, plan: RoutePlan): Promise<"ok" | "full" | "full-unknown"> {
    const { neutron } = this.#d;
    try {
      if (this.#mode === "atomic") {
        if (plan.remove.length > 0) await neutron.removeExtraRoutes(router.id, plan.remove);
        if (plan.add.length > 0) await neutron.addExtraRoutes(router.id, plan.add);
      } else {
        const drop = new Set(plan.remove.map((r) => `${r.destination} ${r.nexthop}`));
        const next = [...router.routes.filter((r) => !drop.has(`${r.destination} ${r.nexthop}`)), ...plan.add];
        await neutron.setRoutes(
          router.id,
          next.map((r) => ({ destination: r.destination, nexthop: r.nexthop })),
          router.revision_number,
        );
      }
      return "ok";
    } catch (e) {
      if (isOpenStackError(e, "RoutesExhausted") || isOpenStackError(e, "OverQuota")) {
        const learnt = limitFrom(e.detail);
        if (learnt === undefined) return "full-unknown";
        this.#limit = learnt;
        this.#d.log.warn("the router refused more routes: route limit learnt", { limit: learnt, error: e.type });
        return "full";
      }
      throw e;
    }
  }

  async reconcile(): Promise<ReconcileResult> {
    const { log, metrics, session, clock } = this.#d;
    const t0 = clock.now();
    const calls0 = session.calls.network;
    try {
      await this.#init();
      let { router, desired } = await this.#read();
      let plan = this.#plan(router, desired);
      let added = 0;
      let removed = 0;
      // When the router refuses without saying its limit, add in halving batches: the first single
      // route it refuses marks the limit (a few calls, once).
      let batch = Infinity;
      for (let attempt = 0; attempt < 24 && (plan.add.length > 0 || plan.remove.length > 0); attempt++) {
        const step = plan.add.length > batch ? { ...plan, add: plan.add.slice(0, batch) } : plan;
        let outcome: "ok" | "full" | "full-unknown" | "stale";
        try {
          outcome = await this.#apply(router, step);
        } catch (e) {
          if (!isOpenStackError(e, "RevisionNumberConstraintFailed")) throw e;
          log.info("the router changed under us (412): re-reading");
          outcome = "stale";
        }
        if (outcome === "ok") {
          added += step.add.length;
          removed += step.remove.length;
          log.info("router routes changed", {
            added: step.add.map((r) => r.destination),
            removed: step.remove.map((r) => r.destination),
          });
        } else if (outcome === "full-unknown") {
          if (step.add.length <= 1) {
            this.#limit = router.routes.length - step.remove.length;
            log.warn("the router refused one more route (OverQuota): route limit learnt", { limit: this.#limit });
          } else {
            batch = Math.ceil(step.add.length / 2);
          }
        }
        // add/remove_extraroutes change exactly what they name. A PUT replaces the whole list and
        // real Neutron's If-Match is no compare-and-swap: read the router back, and go again if a
        // concurrent writer's update won over ours.
        if (outcome === "ok" && step === plan && this.#mode === "atomic") {
          plan = { ...plan, add: [], remove: [] };
          break;
        }
        ({ router, desired } = await this.#read());
        plan = this.#plan(router, desired);
      }
      const missing = plan.unfit.flatMap((u) => u.pods);
      const result: ReconcileResult = {
        desired: desired.length,
        installed: plan.installed.length,
        added,
        removed,
        missing,
        apiCalls: session.calls.network - calls0,
        durationMs: clock.now() - t0,
        mode: this.#mode!,
        ...(this.#limit === undefined ? {} : { limit: this.#limit }),
      };
      await this.#report(plan);
      metrics.set(M.desired[0], M.desired[1], result.desired);
      metrics.set(M.installed[0], M.installed[1], result.installed);
      metrics.set(M.missing[0], M.missing[1], missing.length);
      if (this.#limit !== undefined) metrics.set(M.limit[0], M.limit[1], this.#limit);
      metrics.inc(M.changes[0], M.changes[1], { action: "add" }, added);
      metrics.inc(M.changes[0], M.changes[1], { action: "remove" }, removed);
      return result;
    } catch (e) {
      metrics.inc(M.errors[0], M.errors[1]);
      throw e;
    } finally {
      metrics.inc(M.reconciles[0], M.reconciles[1]);
      metrics.set(M.calls[0], M.calls[1], session.calls.network - calls0);
      metrics.observe(M.duration[0], M.duration[1], (clock.now() - t0) / 1000, DURATION_BUCKETS);
    }
  }

  // Pods without a route are logged (when the set changes), counted, and told to Kubernetes.
  async #report(plan: RoutePlan): Promise<void> {
    const missing = plan.unfit.flatMap((u) => u.pods.map((ip) => ({ ip, serverId: u.serverId })));
    const key = missing.map((m) => m.ip).join(",");
    if (key === this.#lastMissing) return;
    this.#lastMissing = key;
    if (missing.length === 0) {
      this.#d.log.info("every pod has a router route again");
      return;
    }
    const why = `the router ${this.#d.cfg.routerId} holds at most ${this.#limit ?? "?"} routes (${plan.foreign} not ours)`;
    this.#d.log.warn("pods without a router route", {
      count: missing.length,
      pods: missing.map((m) => m.ip),
      reason: why,
    });
    try {
      await this.#d.pods?.reportMissing(missing, why);
    } catch (e) {
      this.#d.log.warn("cannot post Kubernetes events", { error: e });
    }
  }
}
