// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does: take the
// lease when it is free or expired, renew it before it expires, lose leadership when renewing has
// failed for two thirds of the lease duration. Optimistic concurrency (resourceVersion) decides races.
import type { Logger } from "../log/logger.js";
import type { Clock } from "../base/clock.js";
import { KubeError, type Kube, type Lease } from "./kube.js";

export interface LeaderOptions {
  kube: Kube;
  namespace: string;
  name: string;
  identity: string;
  durationMs: number;
  clock: Clock;
  log: Logger;
}

/** Kubernetes MicroTime: RFC 3339 with microseconds. */
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

/** How long a leader may go without a renewal before it stops acting as leader. */
export const renewDeadlineMs = (durationMs: number): number => Math.floor((durationMs * 2) / 3);

export class LeaderElector {
  readonly #o: LeaderOptions;
  #leader = false;
  #lastRenew = 0;
  constructor(o: LeaderOptions) {
    this.#o = o;
  }

  /**
   * Leading ends when renewing has failed for two thirds of the lease (client-go's renew deadline,
   * 10 s of 15), not at its last millisecond: another replica may take the lease once it expires by
   * its own clock, and the margin absorbs clock skew and a request in flight.
   */
  get isLeader(): boolean {
    return this.#leader && this.#o.clock.now() - this.#lastRenew < renewDeadlineMs(this.#o.durationMs);
  }

  /** One attempt to acquire or renew. Returns whether we hold the lease now. */
  async tick(): Promise<boolean> {
    const { kube, namespace, name, identity, durationMs, clock, log } = this.#o;
    const now = clock.now();
    try {
      const cur = await kube.getLease(namespace, name);
      const spec = {
        holderIdentity: identity,
        leaseDurationSeconds: Math.round(durationMs / 1000),
        renewTime: iso(now),
      };
      if (cur === undefined) {
        await kube.createLease({
          metadata: { name, namespace },
          spec: { ...spec, acquireTime: iso(now), leaseTransitions: 0 },
        });
      } else {
        const holder = cur.spec.holderIdentity;
        const renewed = cur.spec.renewTime === undefined ? 0 : Date.parse(cur.spec.renewTime);
        const expired = now - renewed > (cur.spec.leaseDurationSeconds ?? durationMs / 1000) * 1000;
        if (holder !== undefined && holder !== identity && holder !== "" && !expired) {
          if (this.#leader) log.warn("lost leadership", { holder });
          this.#leader = false;
          return false;
        }
        const taking = holder !== identity;
        const next: Lease = {
          metadata: {
            name,
            namespace,
            ...(cur.metadata.resourceVersion === undefined ? {} : { resourceVersion: cur.metadata.resourceVersion }),
          },
          spec: {
            ...cur.spec,
            ...spec,
            ...(taking ? { acquireTime: iso(now), leaseTransitions: (cur.spec.leaseTransitions ?? 0) + 1 } : {}),
          },
        };
        await kube.replaceLease(next);
      }
      if (!this.#leader) log.info("became the leader", { lease: `${namespace}/${name}`, identity });
      this.#leader = true;
      this.#lastRenew = now;
      return true;
    } catch (e) {
      if (e instanceof KubeError && e.status === 409) {
        this.#leader = false;
        return false;
      }
      log.warn("cannot renew the lease", { error: e });
      return this.isLeader;
    }
  }
}
