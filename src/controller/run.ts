// vrouter-route-controller: reconcile in a loop (as leader, when several replicas run in
// Kubernetes), serve /healthz and /metrics, stop cleanly on SIGTERM.
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import { parseArgs } from "node:util";
import type { Io } from "../base/io.js";
import { fileSink } from "../log/file-sink.js";
import { createLogger, type Logger } from "../log/logger.js";
import { createClients } from "../openstack/clients.js";
import { fileSources } from "../openstack/credentials.js";
import type { HttpFetch } from "../openstack/http.js";
import { nodeFetch } from "../openstack/node-fetch.js";
import { systemClock, type Clock } from "../base/clock.js";
import { ConfigError, parseControllerConfig, type ControllerConfig } from "./config.js";
import { serveControllerHttp } from "./http.js";
import { syncFloatingIps } from "./floating.js";
import { Kube, kubeAccess, watchNodeDeletions, watchPods, type AccessNeed } from "./kube.js";
import { LeaderElector } from "./leader.js";
import { countedFetch, Metrics } from "./metrics.js";
import { Reconciler, type PodLocator, type ReconcileResult } from "./reconciler.js";

export const CONTROLLER_USAGE = `usage: vrouter-route-controller --config FILE [--listen HOST:PORT] [--once]
  Keeps the Neutron router's routes to mix-mode pods in sync. --once: one reconcile, print it, exit.
  --listen: where /healthz and /metrics are served (wins over the configuration's "listen"; the
  add-on gives the node's address, so Prometheus can scrape it).
`;

export interface Controller {
  reconciler: Reconciler;
  metrics: Metrics;
  /** One leader-checked reconcile. */
  step(): Promise<ReconcileResult | undefined>;
  stop(): Promise<void>;
  last?: { at: number; ok: boolean; result?: ReconcileResult; error?: string };
  httpAddress?: string;
}

function podLocator(kube: Kube, log: Logger, clock: Clock): PodLocator {
  return {
    async reportMissing(missing, why) {
      const byIp = new Map((await kube.listPods()).filter((p) => p.ip !== undefined).map((p) => [p.ip!, p]));
      for (const m of missing) {
        const pod = byIp.get(m.ip);
        if (pod === undefined) continue;
        await kube.createEvent(
          pod,
          "NoRouterRoute",
          `No Neutron router route to ${m.ip}: ${why}. Traffic from outside its subnet cannot reach this pod.`,
          "vrouter-route-controller",
          new Date(clock.now()),
        );
        log.info("posted a Kubernetes event", { pod: `${pod.namespace}/${pod.name}`, ip: m.ip });
      }
    },
  };
}

/**
 * Before anything runs: the permissions the configuration needs, asked of the API server. A role
 * missing a verb fails the start with the list, instead of a 403 somewhere in a loop.
 */
async function checkAccess(kube: Kube, k: ControllerConfig["kubernetes"], floating: boolean): Promise<void> {
  const needs: AccessNeed[] = [
    { verb: "get", resource: "leases", group: "coordination.k8s.io", namespace: k.leaseNamespace },
    { verb: "create", resource: "leases", group: "coordination.k8s.io", namespace: k.leaseNamespace },
    { verb: "update", resource: "leases", group: "coordination.k8s.io", namespace: k.leaseNamespace },
  ];
  if (k.events || k.watchPods) needs.push({ verb: "list", resource: "pods" });
  if (k.watchPods) needs.push({ verb: "watch", resource: "pods" });
  if (k.watchNodes === true) needs.push({ verb: "watch", resource: "nodes" });
  if (k.events) needs.push({ verb: "create", resource: "events" });
  if (floating) {
    needs.push({ verb: "list", resource: "pods" }, { verb: "patch", resource: "pods" });
    if (!k.events) needs.push({ verb: "create", resource: "events" });
  }
  let missing: string[];
  try {
    missing = await kube.missingAccess(needs);
  } catch (e) {
    throw new ConfigError(`Cannot ask the Kubernetes API what this controller may do: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (missing.length > 0)
    throw new ConfigError(
      `The Kubernetes identity of this controller may not: ${missing.join("; ")}. Grant them in its ClusterRole and Role (deploy/kubernetes/base/rbac.yaml), or turn off what needs them (kubernetes.events, kubernetes.watchPods)`,
    );
}

export async function startController(
  cfg: ControllerConfig,
  opts: {
    env: Readonly<Record<string, string | undefined>>;
    log: Logger;
    clock?: Clock;
    loop?: boolean;
    fetch?: HttpFetch;
  },
): Promise<Controller> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log;
  const fetchOpts = {
    timeoutMs: 30_000,
    ...(cfg.credentials.caCert === undefined ? {} : { caCert: cfg.credentials.caCert }),
    ...(cfg.credentials.insecure === undefined ? {} : { insecure: cfg.credentials.insecure }),
  };
  const metrics = new Metrics();
  const clients = createClients({
    auth: cfg.credentials.auth,
    fetch: countedFetch(opts.fetch ?? nodeFetch(fetchOpts), metrics, "tcnp_controller_cloud"),
    clock,
    log,
    timeoutMs: 30_000,
  });
  const access = cfg.kubernetes.enabled === false ? undefined : kubeAccess(opts.env, cfg.kubernetes);
  if (cfg.kubernetes.enabled === true && access === undefined)
    throw new ConfigError(
      `"kubernetes.enabled" is true but there is no in-cluster service account and no kubernetes.apiUrl`,
    );
  const kube =
    access === undefined
      ? undefined
      : new Kube(
          nodeFetch({ timeoutMs: 10_000, ...(access.caCert === undefined ? {} : { caCert: access.caCert }) }),
          access,
        );
  if (kube !== undefined && opts.loop !== false) await checkAccess(kube, cfg.kubernetes, cfg.floatingIps !== undefined);
  const reconciler = new Reconciler({
    cfg,
    neutron: clients.neutron,
    session: clients.session,
    nova: clients.nova,
    log,
    clock,
    metrics,
    ...(kube !== undefined && cfg.kubernetes.events ? { pods: podLocator(kube, log, clock) } : {}),
  });
  const elector =
    kube === undefined
      ? undefined
      : new LeaderElector({
          kube,
          namespace: cfg.kubernetes.leaseNamespace,
          name: cfg.kubernetes.leaseName,
          // Unique per process: replicas on the host network of one node share its hostname, and
          // each is PID 1 of its container (hostname_PID made both of them leader).
          identity: cfg.kubernetes.identity ?? `${os.hostname()}_${randomUUID()}`,
          durationMs: cfg.kubernetes.leaseDurationMs,
          clock,
          log,
        });
  const timers: NodeJS.Timeout[] = [];
  const stops: Array<() => void> = [];
  const c: Controller = {
    reconciler,
    metrics,
    async step() {
      const leading = elector === undefined || elector.isLeader || (await elector.tick());
      metrics.set("tcnp_controller_leader", "1 while this replica leads (holds the Lease), else 0", leading ? 1 : 0);
      if (!leading) return undefined;
      try {
        const result = await reconciler.reconcile();
        if (kube !== undefined && cfg.floatingIps !== undefined) {
          const f = await syncFloatingIps({
            neutron: clients.neutron,
            kube,
            cfg: cfg.floatingIps,
            cluster: cfg.cluster,
            networks: cfg.networks,
            log,
            now: () => clock.now(),
          });
          metrics.set(
            "tcnp_floating_ips_failed",
            "Pods whose floating IP could not be associated (last pass).",
            f.failed,
          );
        }
        c.last = { at: clock.now(), ok: true, result };
        return result;
      } catch (e) {
        c.last = { at: clock.now(), ok: false, error: (e as Error).message };
        log.error("reconcile failed", { error: e });
        throw e;
      }
    },
    async stop() {
      for (const t of timers) clearInterval(t);
      for (const f of stops) f();
      await http?.close();
    },
  };
  let http: Awaited<ReturnType<typeof serveControllerHttp>> | undefined;
  if (cfg.listen !== undefined) {
    http = await serveControllerHttp(cfg.listen, metrics, {
      healthy: () => {
        if (c.last === undefined) return { ok: true, detail: "starting" };
        if (!c.last.ok) return { ok: false, detail: `last reconcile failed: ${c.last.error ?? ""}` };
        if (clock.now() - c.last.at > 3 * cfg.intervalMs + 30_000)
          return { ok: false, detail: "no reconcile for too long" };
        return { ok: true, detail: "ok" };
      },
    });
    c.httpAddress = http.address;
    log.info("serving /healthz and /metrics", { address: http.address });
  }
  if (opts.loop !== false) {
    let running = false;
    let again = false;
    const tick = (): void => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      c.step()
        .catch(() => {})
        .finally(() => {
          running = false;
          if (again) {
            again = false;
            tick();
          }
        });
    };
    timers.push(setInterval(tick, cfg.intervalMs));
    // A replica that takes the Lease over reconciles at once, not at its next interval.
    if (elector !== undefined)
      timers.push(
        setInterval(() => {
          const was = elector.isLeader;
          elector.tick().then(
            (leads) => {
              if (leads && !was) tick();
            },
            () => undefined,
          );
        }, cfg.kubernetes.renewMs),
      );
    // Pod events wake the loop early (coalesced), so the interval can stay long.
    if (access !== undefined && cfg.kubernetes.watchPods) {
      let pending: NodeJS.Timeout | undefined;
      const watch = watchPods(
        access,
        (why) => {
          log.debug("woken by a pod event", { why });
          pending ??= setTimeout(() => {
            pending = undefined;
            metrics.inc("tcnp_pod_event_wakeups_total", "Reconciles started early by a pod event.");
            tick();
          }, 200);
        },
        log,
      );
      stops.push(() => {
        watch.stop();
        if (pending !== undefined) clearTimeout(pending);
      });
    }
    // A Node deleted (its VM gone): what tcnp made for the VM is released by the next reconcile, now.
    if (access !== undefined && cfg.kubernetes.watchNodes === true) {
      const watch = watchNodeDeletions(
        access,
        (why) => {
          log.info("woken by a node deletion", { why });
          metrics.inc("tcnp_node_deletion_wakeups_total", "Reconciles started early by a Node deletion.");
          tick();
        },
        log,
      );
      stops.push(() => watch.stop());
    }
    tick();
  }
  return c;
}

export async function controllerCli(
  argv: string[],
  io: Io,
  onStop: (stop: () => Promise<void>) => void,
): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: "string" },
      listen: { type: "string" },
      once: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help === true) {
    io.out(CONTROLLER_USAGE);
    return 0;
  }
  if (values.config === undefined) {
    io.err(`vrouter-route-controller: --config is required\n${CONTROLLER_USAGE}`);
    return 2;
  }
  let cfg: ControllerConfig;
  try {
    cfg = parseControllerConfig(fs.readFileSync(values.config, "utf8"), values.config, fileSources(io.env));
    if (values.listen !== undefined) cfg = { ...cfg, listen: values.listen };
  } catch (e) {
    io.err(`vrouter-route-controller: ${(e as Error).message}\n`);
    return 2;
  }
  const log = createLogger(cfg.logFile === undefined ? { write: (l) => io.err(l) } : fileSink(cfg.logFile)).child({
    program: "vrouter-route-controller",
  });
  if (values.once === true) {
    const c = await startController(
      { ...cfg, kubernetes: { ...cfg.kubernetes, enabled: false } },
      { env: io.env, log, loop: false },
    );
    try {
      const r = await c.reconciler.reconcile();
      io.out(`${JSON.stringify(r)}\n`);
      return 0;
    } catch (e) {
      io.err(`vrouter-route-controller: ${(e as Error).message}\n`);
      return 1;
    } finally {
      await c.stop();
    }
  }
  let c: Controller;
  try {
    c = await startController(cfg, { env: io.env, log });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    io.err(`vrouter-route-controller: ${e.message}\n`);
    return 2;
  }
  onStop(() => c.stop());
  return -1;
}
