// The node's lifecycle in Kubernetes, kept by its agent: a NoSchedule taint while the pools are not
// warm yet (so the scheduler does not send pods a node cannot start), removed once they are; the
// node's pod capacity from the pools' maximums, published as an annotation, and for eni as an
// extended resource the scheduler counts (a pod asks for `tcnp.io/eni: 1`).
import type { Logger } from "../log/logger.js";
import type { PoolView } from "../ipam/pool/pool.js";
import { KubeError, type Kube, type KubeNode } from "../controller/kube.js";

export const NOT_READY_TAINT = "tcnp.io/not-ready";
export const CAPACITY_ANNOTATION = "tcnp.io/pod-capacity";
export const ENI_RESOURCE = "tcnp.io/eni";

export interface NodeCapacity {
  mix: number;
  eni: number;
}

/** What the node can hold: the sum of the pools' maximums, by mode. */
export function capacityOf(views: readonly PoolView[]): NodeCapacity {
  const c = { mix: 0, eni: 0 };
  for (const v of views) c[v.mode] += v.targets.maximum;
  return c;
}

export class NodeLifecycle {
  readonly #kube: Kube;
  readonly #name: string;
  readonly #log: Logger;
  readonly #views: () => { ready: boolean; views: PoolView[] };
  #phase: "taint" | "wait" | "untaint" | "done" = "taint";
  #published = "";
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(o: { kube: Kube; nodeName: string; log: Logger; pools: () => { ready: boolean; views: PoolView[] } }) {
    this.#kube = o.kube;
    this.#name = o.nodeName;
    this.#log = o.log.child({ node: o.nodeName });
    this.#views = o.pools;
  }

  /**
   * At start: the taint goes on when the pools are not warm (an agent restarted with warm pools,
   * as in an upgrade, leaves the node schedulable), and the capacity is published. Failures (the
   * API server away) are retried every tick.
   */
  start(intervalMs = 1000): Promise<void> {
    this.#phase = this.#views().ready ? "untaint" : "taint";
    this.#timer = setInterval(() => void this.tick(), intervalMs);
    this.#timer.unref();
    return this.tick();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  /** Once the pools are warm, the taint comes off (once per agent); capacity follows the pools. */
  async tick(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const { ready, views } = this.#views();
      if (this.#phase === "taint") {
        if (ready) this.#phase = "untaint";
        else {
          await this.#setTaint(true);
          this.#phase = "wait";
        }
      }
      if (this.#phase === "wait" && ready) this.#phase = "untaint";
      if (this.#phase === "untaint") {
        // Also a taint a previous agent or the kubelet's registration left.
        await this.#setTaint(false);
        this.#phase = "done";
      }
      const cap = capacityOf(views);
      const key = JSON.stringify(cap);
      if (key !== this.#published) {
        await this.#publish(cap);
        this.#published = key;
      }
    } catch (e) {
      this.#log.warn("cannot update the Node object", { error: e });
    } finally {
      this.#busy = false;
    }
  }

  // Read, change, write with the read's resourceVersion: another writer in between (kubelet,
  // an operator) makes it a conflict, and the next tick reads again.
  async #setTaint(on: boolean): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const n: KubeNode = await this.#kube.getNode(this.#name);
      const taints = n.spec?.taints ?? [];
      const has = taints.some((t) => t.key === NOT_READY_TAINT);
      if (has === on) return;
      const next = on
        ? [...taints, { key: NOT_READY_TAINT, value: "pools-warming", effect: "NoSchedule" }]
        : taints.filter((t) => t.key !== NOT_READY_TAINT);
      try {
        await this.#kube.patchNode(this.#name, {
          metadata: { resourceVersion: n.metadata.resourceVersion },
          spec: { taints: next },
        });
        this.#log.info(on ? "node tainted until the pools are warm" : "pools warm: not-ready taint removed", {
          taint: NOT_READY_TAINT,
        });
        return;
      } catch (e) {
        if (!(e instanceof KubeError) || e.status !== 409) throw e;
      }
    }
  }

  async #publish(cap: NodeCapacity): Promise<void> {
    await this.#kube.patchNode(this.#name, {
      metadata: { annotations: { [CAPACITY_ANNOTATION]: JSON.stringify(cap) } },
    });
    if (cap.eni > 0)
      await this.#kube.patchNodeStatus(this.#name, { status: { capacity: { [ENI_RESOURCE]: String(cap.eni) } } });
    this.#log.info("node capacity published", { ...cap });
  }
}
