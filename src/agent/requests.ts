// How the agent serves the plugins' requests: the same plugin code a plugin process runs, with the
// agent's long-lived kernel, cloud connections and ledger writer, one request per pod attachment at
// a time (in arrival order), each accounted for in the log and the metrics.
import { isCniPlugin, type CniPluginName } from "../base/names.js";
import { invalidConfig } from "../cni/errors.js";
import type { CniPlugin } from "../cni/skel.js";
import type { Metrics } from "../controller/metrics.js";
import type { IpamDeps } from "../ipam/session.js";
import type { NetlinkKernel } from "../kernel/netlink-kernel.js";
import type { Kernel } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import type { PluginDeps } from "../plugins/deps.js";
import { runLogged } from "../plugins/run.js";
import { newTimings, timedFetch, type Timings } from "../plugins/timing.js";
import type { HttpFetch } from "../openstack/http.js";
import type { NodeFetchOptions } from "../openstack/node-fetch.js";
import type { Lock } from "../state/lock.js";
import { VERSION } from "../version.js";
import type { InstalledConfs } from "./installed.js";
import { requestKernel } from "./kernel.js";
import { countedFetch } from "../controller/metrics.js";
import { countRequest } from "./metrics.js";
import type { CniRequest, CniResponse } from "./protocol.js";
import { policyPart, type PolicyHooks } from "./policy-hook.js";

export type AgentDeps = IpamDeps & PluginDeps;

/** What the agent takes from a request's environment: the CNI variables that name the attachment. */
const REQUEST_ENV = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"] as const;

/** A plugin that refuses every verb (a configuration the agent does not serve): code 7, naming why. */
function refusing(why: string): CniPlugin {
  const no = (): Promise<never> => Promise.reject(invalidConfig(`Refused: ${why}`));
  return { add: no, del: no, check: no, gc: no, status: no };
}

/** What the entry point wires in: production dependencies and the plugin registry. */
export interface AgentWiring {
  deps(o: { env: Record<string, string | undefined>; log: Logger; kernel: () => Promise<Kernel> }): AgentDeps;
  plugin(name: CniPluginName, deps: AgentDeps): Promise<CniPlugin>;
  fetch(o: NodeFetchOptions): HttpFetch;
  lock(dir: string): Lock;
}

export class AgentRequests {
  readonly #kernel: NetlinkKernel;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #env: Record<string, string | undefined>;
  readonly #wiring: AgentWiring;
  readonly #writer: IpamDeps["writer"];
  readonly #fetches = new Map<string, HttpFetch>();
  readonly #locks = new Map<string, Lock>();
  readonly #perPod = new Map<string, Promise<unknown>>();
  readonly #installed: InstalledConfs;
  #policy: PolicyHooks | undefined;

  constructor(o: {
    installed: InstalledConfs;
    kernel: NetlinkKernel;
    log: Logger;
    metrics: Metrics;
    env: Record<string, string | undefined>;
    wiring: AgentWiring;
    writer: IpamDeps["writer"];
  }) {
    this.#kernel = o.kernel;
    this.#log = o.log;
    this.#metrics = o.metrics;
    this.#env = o.env;
    this.#wiring = o.wiring;
    this.#writer = o.writer;
    this.#installed = o.installed;
  }

  /** NetworkPolicy: a pod's ADD answers once its rules are in place; its DEL removes them. */
  enforcePolicy(p: PolicyHooks): void {
    this.#policy = p;
  }

  /** Dependencies for a request (timed) or for the pools (not): the agent's shared connections and locks. */
  deps(env: Record<string, string | undefined>, log: Logger, timings?: Timings): AgentDeps {
    const k: Kernel = timings === undefined ? this.#kernel : requestKernel(this.#kernel, timings, log);
    const d = this.#wiring.deps({ env, log, kernel: async () => k });
    d.httpFetch = (o) => {
      const key = JSON.stringify(o);
      let f = this.#fetches.get(key);
      if (f === undefined) {
        f = countedFetch(this.#wiring.fetch(o), this.#metrics, "tcnp_agent_cloud");
        this.#fetches.set(key, f);
      }
      return timings === undefined ? f : timedFetch(f, timings);
    };
    d.lockFor = (dir) => {
      let l = this.#locks.get(dir);
      if (l === undefined) {
        l = this.#wiring.lock(dir);
        this.#locks.set(dir, l);
      }
      return l;
    };
    d.writer = this.#writer;
    return d;
  }

  /**
   * One request per pod attachment at a time, in arrival order. A runtime that killed its plugin
   * (the forwarder) sends DEL at once, while the agent may still be working on that ADD: the DEL
   * must find what the ADD made, not run beside it.
   */
  cni(req: CniRequest): Promise<CniResponse> {
    const key = `${req.env["CNI_CONTAINERID"] ?? ""}/${req.env["CNI_IFNAME"] ?? ""}`;
    if (key === "/") return this.#serve(req);
    const prev = this.#perPod.get(key) ?? Promise.resolve();
    const mine = prev.then(
      () => this.#serve(req),
      () => this.#serve(req),
    );
    this.#perPod.set(key, mine);
    void mine
      .finally(() => {
        if (this.#perPod.get(key) === mine) this.#perPod.delete(key);
      })
      .catch(() => {});
    return mine;
  }

  async #serve(req: CniRequest): Promise<CniResponse> {
    if (!isCniPlugin(req.plugin)) return { exitCode: 1, stdout: "", stderr: `unknown plugin "${req.plugin}"\n` };
    // The agent's own environment (its state, locks, credentials, CNI_PATH), and of the runtime's
    // only what names the request: nothing a request carries redirects the agent's files,
    // credentials or the plugins it executes.
    const env: Record<string, string | undefined> = { CNI_PATH: "/opt/cni/bin", ...this.#env };
    for (const k of REQUEST_ENV) if (req.env[k] !== undefined) env[k] = req.env[k];
    const log = this.#log.child({
      plugin: req.plugin,
      command: env["CNI_COMMAND"],
      containerId: env["CNI_CONTAINERID"],
      ifname: env["CNI_IFNAME"],
    });
    const timings = newTimings();
    try {
      const refusal = env["CNI_COMMAND"] === "VERSION" ? undefined : this.#installed.refusal(req.plugin, req.stdin);
      const plugin =
        refusal === undefined ? await this.#wiring.plugin(req.plugin, this.deps(env, log, timings)) : refusing(refusal);
      // NetworkPolicy first: the pod's rules name its interfaces before the plugin makes them, so its
      // first packet already meets them.
      if (refusal === undefined && this.#policy !== undefined && env["CNI_COMMAND"] === "ADD") {
        const failed = await this.#policyBefore(this.#policy, req, env, log);
        if (failed !== undefined) return failed;
      }
      const out = await runLogged(
        plugin,
        { env, stdin: req.stdin },
        { about: `${req.plugin} ${VERSION}: tcnp CNI plugin (agent)`, log, timings },
      );
      if (this.#policy !== undefined && out.exitCode === 0)
        await this.#policyAfter(this.#policy, req, env, out.stdout, log);
      countRequest(this.#metrics, {
        plugin: req.plugin,
        command: env["CNI_COMMAND"] ?? "",
        ok: out.exitCode === 0,
        seconds: out.seconds,
      });
      return { exitCode: out.exitCode, stdout: out.stdout, stderr: out.stderr };
    } finally {
      const ns = env["CNI_NETNS"];
      if (ns !== undefined && ns !== "") this.#kernel.forget(ns);
    }
  }

  async #policyBefore(
    policy: PolicyHooks,
    req: CniRequest,
    env: Record<string, string | undefined>,
    log: Logger,
  ): Promise<CniResponse | undefined> {
    let pod = "";
    try {
      const part = policyPart(req.plugin, env, req.stdin, "");
      if (part === undefined) return undefined;
      pod = ` for pod ${part.namespace}/${part.name}`;
      await policy.attach(part);
      return undefined;
    } catch (e) {
      log.error("cannot put a pod's NetworkPolicy rules in place", { error: e });
      let cniVersion = "1.0.0";
      try {
        const v = (JSON.parse(req.stdin) as { cniVersion?: unknown }).cniVersion;
        if (typeof v === "string") cniVersion = v;
      } catch {
        // the version stays the newest
      }
      const msg = `Cannot put NetworkPolicy rules in place${pod}: ${e instanceof Error ? e.message : String(e)}`;
      return { exitCode: 1, stdout: `${JSON.stringify({ cniVersion, code: 999, msg })}\n`, stderr: "" };
    }
  }

  /** After a successful ADD: the pod's addresses (for other pods' rules); after DEL: its rules go. */
  async #policyAfter(
    policy: PolicyHooks,
    req: CniRequest,
    env: Record<string, string | undefined>,
    stdout: string,
    log: Logger,
  ): Promise<void> {
    try {
      if (env["CNI_COMMAND"] === "DEL") await policy.detach(env["CNI_CONTAINERID"] ?? "");
      else if (env["CNI_COMMAND"] === "ADD") {
        const part = policyPart(req.plugin, env, req.stdin, stdout);
        if (part !== undefined) policy.addresses(part.containerId, part.ips);
      }
    } catch (e) {
      log.warn("cannot update a pod's NetworkPolicy rules", { error: e });
    }
  }
}
