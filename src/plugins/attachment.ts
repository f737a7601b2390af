// The one driver every tcnp plugin runs on. A plugin is two pure functions — parse (configuration →
// typed config or a CNI error naming the field) and plan (config + kernel facts + address → steps,
// teardown, expected state, result) — plus the kernel reads its plan depends on. The driver does
// the rest the same way for all: ADD = parse, prelude, allocation held in one try/catch, record,
// apply; DEL = recorded teardown (best effort), then release; CHECK = diff(expect, snapshot);
// GC = recorded teardown of this network's attachments that are gone.
import { CniCode, CniError, invalidConfig } from "../cni/errors.js";
import type { CmdArgs } from "../cni/env.js";
import { gcMinAgeMs, isObject, type NetConf } from "../cni/netconf.js";
import type { CniResult } from "../cni/result.js";
import type { CniPlugin, PluginContext } from "../cni/skel.js";
import { applyPlan, runTeardown, type Step, type Teardown } from "../kernel/plan.js";
import { snapshot, type Snapshot } from "../kernel/snapshot.js";
import type { Kernel, Netns } from "../kernel/types.js";
import type { Logger } from "../log/logger.js";
import { AttachmentRecords, stateDirOf } from "../state/records.js";
import type { PluginDeps } from "./deps.js";
import { diffExpect, snapshotNeeds, type Expectation, type Finding } from "./expect.js";

/** What one ADD does, undoes and leaves behind, as values. */
export interface AttachmentPlan {
  steps: Step[];
  teardown: Teardown[];
  expect: Expectation[];
  result: CniResult;
}

/** What DEL, CHECK, GC and the doctor know of an attachment after its ADD. */
export interface AttachmentRecord {
  containerId: string;
  ifname: string;
  /** The network configuration's name (GC touches only its own network's records). */
  network?: string;
  netns?: string;
  /** When ADD recorded it (ms since the epoch): GC keeps attachments younger than its grace period. */
  createdAt?: number;
  teardown: Teardown[];
  expect: Expectation[];
}

export interface AttachmentPlugin<C, F> {
  /** The plugin's type; also the folder of its records. */
  readonly name: string;
  parse(conf: NetConf, args: CmdArgs): C;
  /** The IPAM plugin this configuration delegates to; undefined: none (chained, or the reference keys). */
  ipamType(config: C, conf: NetConf): string | undefined;
  /** The pod interfaces the attachment creates: ADD refuses when one exists already. */
  podInterfaces(config: C, args: CmdArgs): string[];
  /** Read what the plan depends on (and make node-wide state the plan assumes). */
  facts(k: Kernel, config: C, ctx: PluginContext, address: CniResult | undefined, log: Logger): Promise<F>;
  plan(config: C, facts: F, address: CniResult | undefined, args: CmdArgs): AttachmentPlan;
  /** DEL and GC without a record (lost state): what names, prevResult and the kernel still tell. */
  fallbackTeardown(config: C | undefined, ctx: PluginContext, k: Kernel): Promise<Teardown[]>;
}

/** `ipam.type` when an ipam block is present: a name, never a path. */
export function ipamTypeOf(conf: NetConf): string | undefined {
  return conf.raw["ipam"] === undefined ? undefined : requiredIpamType(conf);
}

/** `ipam.type`, which this plugin cannot do without. */
export function requiredIpamType(conf: NetConf): string {
  const ipam = conf.raw["ipam"];
  if (!isObject(ipam)) throw invalidConfig(`"ipam" is required: {"type": "tcnp-ipam", ...}`);
  const type = ipam["type"];
  if (typeof type !== "string" || type === "") throw invalidConfig(`ipam.type is required (e.g. "tcnp-ipam")`);
  // A plugin type is a name looked up in CNI_PATH, as libcni insists: a path would run any file as root.
  if (/[/\\]/.test(type) || type === "." || type === "..")
    throw invalidConfig(`ipam.type "${type}" must be a plugin name, not a path`);
  return type;
}

const recordsOf = (name: string, ctx: PluginContext, deps: PluginDeps): AttachmentRecords<AttachmentRecord> =>
  new AttachmentRecords<AttachmentRecord>(stateDirOf(ctx.conf, deps.env), name, isAttachmentRecord);

/** A record this version can act on (older ones had no teardown or expectations: DEL falls back). */
export function isAttachmentRecord(r: unknown): r is AttachmentRecord {
  return (
    isObject(r) &&
    typeof r["containerId"] === "string" &&
    typeof r["ifname"] === "string" &&
    Array.isArray(r["teardown"]) &&
    Array.isArray(r["expect"])
  );
}

/** Snapshot every namespace the expectations name, reading only the tables and sysctls they need. */
export async function snapshotsFor(k: Kernel, expect: readonly Expectation[]): Promise<Map<Netns, Snapshot>> {
  const out = new Map<Netns, Snapshot>();
  for (const ns of new Set(expect.map((e) => e.fact.ns))) out.set(ns, await snapshot(k, ns, snapshotNeeds(expect, ns)));
  return out;
}

/** The differences between a record's expected state and the kernel. */
export async function checkRecord(k: Kernel, rec: Pick<AttachmentRecord, "expect">): Promise<Finding[]> {
  return diffExpect(rec.expect, await snapshotsFor(k, rec.expect));
}

export function attachmentPlugin<C, F>(p: AttachmentPlugin<C, F>, deps: PluginDeps): CniPlugin {
  const warn = (m: string, e: unknown): void => deps.log.warn(m, { error: e });
  const info = (m: string, fields: Record<string, unknown>): void => deps.log.info(m, fields);

  async function attach(ctx: PluginContext, k: Kernel, config: C, address: CniResult | undefined): Promise<CniResult> {
    const facts = await p.facts(k, config, ctx, address, deps.log);
    const plan = p.plan(config, facts, address, ctx.args);
    const records = recordsOf(p.name, ctx, deps);
    const { containerId, ifname, netns } = ctx.args;
    // Recorded before the first step: a process killed mid-apply leaves DEL what to undo.
    records.put(containerId, ifname, {
      containerId,
      ifname,
      network: ctx.conf.name,
      netns,
      createdAt: deps.clock.now(),
      teardown: plan.teardown,
      expect: plan.expect,
    });
    try {
      await applyPlan(k, plan.steps, { onWarn: warn });
    } catch (e) {
      records.delete(containerId, ifname);
      throw e;
    }
    deps.log.info("attached", { plugin: p.name, steps: plan.steps.length });
    return plan.result;
  }

  return {
    async add(ctx) {
      const config = p.parse(ctx.conf, ctx.args);
      const ipamType = p.ipamType(config, ctx.conf);
      const k = await deps.kernel();
      if (!k.netnsExists(ctx.args.netns))
        throw new CniError(CniCode.UnknownContainer, `The pod's network namespace "${ctx.args.netns}" does not exist`);
      for (const name of p.podInterfaces(config, ctx.args)) {
        if ((await k.getLink(ctx.args.netns, name)) !== undefined)
          throw invalidConfig(`Interface ${name} already exists in the pod's namespace`);
      }
      if (ipamType === undefined) return attach(ctx, k, config, ctx.conf.prevResult);
      const ipam = deps.ipam(ipamType);
      const allocated = await ipam.add(ctx);
      try {
        return await attach(ctx, k, config, allocated);
      } catch (e) {
        try {
          await ipam.del({ ...ctx, conf: { ...ctx.conf, prevResult: allocated } });
        } catch (re) {
          deps.log.error("cannot release the address after a failed ADD", { error: re });
        }
        throw e;
      }
    },

    // Teardown first, so a released address is never handed out while this pod's routes still
    // point at it; the release runs whatever the teardown met, and both failures are reported.
    async del(ctx) {
      let config: C | undefined;
      let parseError: unknown;
      try {
        config = p.parse(ctx.conf, ctx.args);
      } catch (e) {
        parseError = e;
      }
      const k = await deps.kernel();
      const records = recordsOf(p.name, ctx, deps);
      const rec = records.get(ctx.args.containerId, ctx.args.ifname);
      if (rec === undefined && config === undefined) throw parseError;
      const teardown = rec?.teardown ?? (await p.fallbackTeardown(config, ctx, k));
      const errors = await runTeardown(k, teardown, { onWarn: warn, onInfo: info });
      const ipamType = config === undefined ? ipamTypeOf(ctx.conf) : p.ipamType(config, ctx.conf);
      if (ipamType !== undefined) await deps.ipam(ipamType).del(ctx);
      if (errors.length > 0)
        throw new CniError(
          CniCode.KernelFailure,
          `Cannot remove the pod's network: ${errors.map((e) => e.message).join("; ")}`,
        );
      records.delete(ctx.args.containerId, ctx.args.ifname);
    },

    async check(ctx) {
      const config = p.parse(ctx.conf, ctx.args);
      if (ctx.conf.prevResult === undefined) throw invalidConfig("CHECK needs a prevResult");
      const rec = recordsOf(p.name, ctx, deps).get(ctx.args.containerId, ctx.args.ifname);
      if (rec === undefined)
        throw new CniError(
          CniCode.CheckFailed,
          `No record of ${ctx.args.containerId}/${ctx.args.ifname} in ${stateDirOf(ctx.conf, deps.env)}/${p.name}: this attachment was not made here`,
        );
      const findings = await checkRecord(await deps.kernel(), rec);
      if (findings.length > 0) throw new CniError(CniCode.CheckFailed, findings.map((f) => f.message).join("; "));
      const ipamType = p.ipamType(config, ctx.conf);
      if (ipamType !== undefined) await deps.ipam(ipamType).check(ctx);
    },

    async gc(ctx) {
      const k = await deps.kernel();
      const valid = new Set((ctx.conf.validAttachments ?? []).map((a) => `${a.containerID}/${a.ifname}`));
      const records = recordsOf(p.name, ctx, deps);
      const minAgeMs = gcMinAgeMs(ctx.conf);
      for (const r of records.list()) {
        if (r.network !== ctx.conf.name || valid.has(`${r.containerId}/${r.ifname}`)) continue;
        if (deps.clock.now() - (r.createdAt ?? 0) < minAgeMs) continue;
        const errors = await runTeardown(k, r.teardown, { onWarn: warn, onInfo: info });
        if (errors.length === 0) records.delete(r.containerId, r.ifname);
        else
          deps.log.warn("GC could not remove an attachment's leftovers", {
            containerId: r.containerId,
            ifname: r.ifname,
            errors: errors.map((e) => e.message),
          });
      }
      const ipamType = ipamTypeOf(ctx.conf);
      if (ipamType !== undefined) await deps.ipam(ipamType).gc?.(ctx);
    },

    async status(ctx) {
      const ipamType = ipamTypeOf(ctx.conf);
      if (ipamType !== undefined) await deps.ipam(ipamType).status?.(ctx);
    },
  };
}
