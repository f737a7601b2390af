// eni mode's cloud work for a pool: each address is a Neutron port of its own, hot-plugged into the
// VM with Nova and found there by its MAC. Pool ports are created (named, described and tagged as
// the pool's, with the configured security groups), attached, and wait with their NIC in the VM; a
// pod's port made on demand is named and described as the pod's. A released port is detached and
// deleted. Every port is recorded in the ledger as soon as it exists, intents first.
import { CniCode, CniError } from "../../cni/errors.js";
import type { CniResult } from "../../cni/result.js";
import { HOST } from "../../kernel/types.js";
import { isOpenStackError, isTransient } from "../../openstack/errors.js";
import type { Port, Subnet } from "../../openstack/types.js";
import {
  destroyPodPorts,
  destroyPort,
  detachPort,
  portName,
  securityGroupsFor,
  serverEniPorts,
  waitForNic,
  type EniDeps,
} from "../eni.js";
import type { HeldAddress } from "../ledger/ledger.js";
import {
  keyOf,
  ownerKey,
  ownerText,
  type IntentRecord,
  type Owner,
  type PodRecord,
  type PoolRecord,
} from "../ledger/records.js";
import { candidateSubnets } from "../mix.js";
import { subnetFields } from "../subnet.js";
import {
  clusterTag,
  containerTag,
  ENI_POOL_NAME,
  ENI_TAG,
  eniDescription,
  eniPoolDescription,
  ifnameTag,
  nodeTag,
} from "../tags.js";
import type { ModeOps, PoolContext } from "./ops.js";

/** An eni port kept in the node agent's pool. */
export const ENI_POOL_TAG = "tcnp-eni-pool";

const poolTags = (serverId: string, cluster: string): string[] => [
  "tcnp",
  ENI_TAG,
  ENI_POOL_TAG,
  nodeTag(serverId),
  clusterTag(cluster),
];
const podTags = (o: Owner, serverId: string, cluster: string): string[] => [
  "tcnp",
  ENI_TAG,
  containerTag(o.containerId),
  ifnameTag(o.ifname),
  nodeTag(serverId),
  clusterTag(cluster),
];

export class EniOps implements ModeOps {
  readonly mode = "eni" as const;
  readonly batched = false;
  readonly port = undefined;
  readonly #c: PoolContext;
  #serverId: string | undefined;
  /** A port create whose answer was lost: the cloud may hold a pool port no record names yet. */
  unsure = false;
  /** The VM's PCIe slots, learnt when an attach found them full: the eni ports attached then. */
  learntMaximum: number | undefined;

  constructor(c: PoolContext) {
    this.#c = c;
  }

  async #d(): Promise<EniDeps> {
    const s = this.#c.s;
    return {
      cfg: s.cfg,
      neutron: s.clients.neutron,
      nova: s.clients.nova,
      clock: s.deps.clock,
      log: s.deps.log,
      kernel: await s.deps.kernel(),
    };
  }
  async #server(): Promise<string> {
    this.#serverId ??= await this.#c.s.serverId();
    return this.#serverId;
  }
  async #subnets(): Promise<Subnet[]> {
    const s = this.#c.s;
    const out: Subnet[] = [];
    for (const net of s.cfg.networks) out.push(...(await candidateSubnets(s.clients.neutron, s.cfg, net)));
    return out;
  }

  #held(port: Port, subnet: Subnet, serverId: string, nic: string | undefined): HeldAddress {
    const ip = port.fixed_ips.find((f) => f.subnet_id === subnet.id)?.ip_address ?? port.fixed_ips[0]!.ip_address;
    return {
      mode: "eni",
      serverId,
      networkId: port.network_id,
      portId: port.id,
      subnetId: subnet.id,
      mac: port.mac_address.toLowerCase(),
      ...(nic === undefined ? {} : { hostIfname: nic }),
      ip,
      ...subnetFields(subnet),
    };
  }

  async cap(): Promise<number> {
    return Number.POSITIVE_INFINITY;
  }

  // Ports one by one (Nova attaches one at a time per VM anyway), each recorded as soon as it exists.
  async fill(n: number, more: () => boolean): Promise<number> {
    const d = await this.#d();
    const serverId = await this.#server();
    const subnet = (await this.#subnets())[0];
    if (subnet === undefined) throw new CniError(CniCode.AddressExhausted, "No IPv4 subnet to pool eni ports from");
    const sgs = await securityGroupsFor(d, serverId);
    const L = this.#c.ledger;
    let made = 0;
    for (; made < n && more(); made++) {
      const port = await d.neutron
        .createPort({
          network_id: subnet.network_id,
          name: ENI_POOL_NAME,
          description: eniPoolDescription(serverId),
          fixed_ips: [{ subnet_id: subnet.id }],
          tags: poolTags(serverId, this.#c.s.cfg.cluster),
          ...(sgs === undefined ? {} : { security_groups: sgs }),
        })
        .catch((e: unknown) => {
          if (isOpenStackError(e, "IpAddressGenerationFailure"))
            throw new CniError(
              CniCode.AddressExhausted,
              `No addresses left for pods: subnet ${subnet.id} of ipam.neutronConf.networks [${this.#c.s.cfg.networks.join(", ")}] is exhausted (409 IpAddressGenerationFailure)`,
              { cause: e },
            );
          // A create whose answer is lost may have made a port: look for it (by description) soon.
          this.unsure = true;
          throw e;
        });
      const rec = L.beginGrow(this.#held(port, subnet, serverId, undefined), this.#c.now());
      const key = keyOf(rec);
      try {
        await d.neutron.setTags("ports", port.id, poolTags(serverId, this.#c.s.cfg.cluster));
        await d.nova.attachInterface(serverId, port.id).catch((e: unknown) => {
          if (/Failed to attach network adapter device/.test((e as Error).message)) {
            // No free PCIe slot: the VM holds what it has now; the node's capacity says so.
            this.learntMaximum = L.all((r) => this.#c.mine(r) && r.kind !== "intent").length;
            d.log.warn("the VM has no free PCIe slot for another eni port", { maximum: this.learntMaximum });
          }
          throw e;
        });
        const nic = await waitForNic(d.kernel, port.mac_address, d.clock, this.#c.s.cfg.timeouts.nicMs);
        if (nic === undefined) throw new Error(`no NIC with MAC ${port.mac_address} appeared in the VM`);
        L.grown(rec.ip!, nic, this.#c.now());
      } catch (e) {
        await this.#undoPort(d, key, port.id, serverId);
        throw e;
      } finally {
        L.unclaim(key);
      }
    }
    return made;
  }

  // Detach and delete a port an intent names; the intent goes, or stays pending with why.
  async #undoPort(d: EniDeps, key: string, portId: string, serverId: string): Promise<void> {
    try {
      await destroyPort(d, portId, serverId);
      this.#c.ledger.undo(key);
    } catch (de) {
      this.#c.ledger.failed(key, (de as Error).message, this.#c.now());
    }
  }

  // A pod's own port on demand: the intent (under the node lock), then the create, attach and NIC
  // without it (seconds), then the pod's record. Whatever fails after the create is undone; what
  // cannot be undone now stays as the intent, for a later DEL, GC or the agent.
  async addFor(o: Owner, pod: ReadonlyMap<string, string>): Promise<PodRecord> {
    const d = await this.#d();
    const serverId = await this.#server();
    const sgs = await securityGroupsFor(d, serverId);
    const L = this.#c.ledger;
    const key = ownerKey(o);
    for (const subnet of await this.#subnets()) {
      L.beginAdd(o, { mode: "eni", serverId, networkId: subnet.network_id, subnetId: subnet.id }, this.#c.now());
      let cleaned = false;
      try {
        const made = await this.#c.unlocked(key, async () => {
          let port: Port;
          try {
            port = await d.neutron.createPort({
              network_id: subnet.network_id,
              name: portName(o.containerId, pod),
              description: eniDescription(o.containerId, o.ifname, serverId),
              fixed_ips: [{ subnet_id: subnet.id }],
              // Kept where the cloud takes tags on create (tag-ports-during-bulk-creation); dropped elsewhere.
              tags: podTags(o, serverId, this.#c.s.cfg.cluster),
              ...(sgs === undefined ? {} : { security_groups: sgs }),
            });
          } catch (e) {
            if (isOpenStackError(e, "IpAddressGenerationFailure")) {
              cleaned = true;
              return undefined;
            }
            // The create may have committed with its answer lost: what it made is found by its
            // description; if that fails too, the intent stays and a later DEL or GC looks again.
            if (!isTransient(e, { conflict: true })) cleaned = true;
            else
              await destroyPodPorts(d, o.containerId, o.ifname, serverId).then(
                () => (cleaned = true),
                (ce: unknown) =>
                  d.log.warn("cannot tell whether a failed port create made a port; DEL or GC will look again", {
                    error: ce,
                  }),
              );
            throw e;
          }
          try {
            await d.neutron.setTags("ports", port.id, podTags(o, serverId, this.#c.s.cfg.cluster));
            await d.nova.attachInterface(serverId, port.id);
            const nic = await waitForNic(d.kernel, port.mac_address, d.clock, this.#c.s.cfg.timeouts.nicMs);
            if (nic === undefined)
              throw new CniError(
                CniCode.TryAgainLater,
                `Port ${port.id} (MAC ${port.mac_address}) was attached to server ${serverId} but no NIC with that MAC appeared in this VM within ${this.#c.s.cfg.timeouts.nicMs / 1000} s (ipam.timeouts.nic)`,
              );
            return { port, nic };
          } catch (e) {
            d.log.warn("eni ADD failed after the port was created: detaching and deleting it", {
              port: port.id,
              error: e,
            });
            await destroyPort(d, port.id, serverId).then(
              () => (cleaned = true),
              (ce: unknown) => d.log.error("cannot clean up the port of a failed ADD; it stays pending", { error: ce }),
            );
            throw e;
          }
        });
        if (made === undefined) {
          L.undo(key);
          continue;
        }
        return L.addDone(
          o,
          { ...this.#held(made.port, subnet, serverId, undefined), hostIfname: made.nic },
          this.#c.now(),
        );
      } catch (e) {
        if (L.get(key)?.kind === "intent") {
          if (cleaned) L.undo(key);
          else L.failed(key, (e as Error).message, this.#c.now());
        }
        throw e;
      } finally {
        L.unclaim(key);
      }
    }
    throw new CniError(
      CniCode.AddressExhausted,
      `No addresses left for pods: every subnet of ipam.neutronConf.networks [${this.#c.s.cfg.networks.join(", ")}] is exhausted (409 IpAddressGenerationFailure)`,
    );
  }

  async takeable(): Promise<(p: PoolRecord) => { hostIfname: string } | string> {
    const links = await (await this.#c.s.deps.kernel()).listLinks(HOST);
    return (p) => {
      const nic = links.find((l) => l.mac === p.mac?.toLowerCase() && l.master === undefined);
      return nic === undefined ? "its NIC is no longer in the VM" : { hostIfname: nic.name };
    };
  }

  // The agent's pool port cools down attached (its NIC is reused); without the agent the port is
  // detached at once (its PCI slot is free again) and kept in Neutron with its address until due.
  async coolDown(o: Owner, coolUntil: number): Promise<void> {
    const L = this.#c.ledger;
    if (this.#c.resident) {
      L.coolDown(o, { coolUntil }, this.#c.now());
      return;
    }
    const i = L.releasePod(o, { coolUntil }, this.#c.now());
    await this.giveBack([i]);
  }

  async giveBack(intents: IntentRecord[]): Promise<void> {
    const d = await this.#d();
    for (const i of intents) await this.#giveOne(d, i);
  }

  // The cloud work (a detach, a delete) without the node lock; the ledger's step after it.
  async #giveOne(d: EniDeps, i: IntentRecord): Promise<void> {
    const L = this.#c.ledger;
    const key = keyOf(i);
    const now = this.#c.now();
    // A pod's DEL whose detach failed is pending with the cool-down it was given: it still applies.
    const cool =
      i.coolUntil !== undefined &&
      i.coolUntil > now &&
      i.owner !== undefined &&
      i.portId !== undefined &&
      i.ip !== undefined;
    const serverId = i.serverId || (await this.#server());
    // a port a record still names (a pool's, a cooling one) is not this search's to take
    const spare = new Set(L.all().flatMap((r) => (r.portId === undefined ? [] : [r.portId])));
    let detached: boolean;
    try {
      detached = await this.#c.unlocked(key, async () => {
        if (cool) return detachPort(d, i.portId!, serverId);
        if (i.portId !== undefined) await destroyPort(d, i.portId, serverId);
        // A port no record knows (its create answer was lost, or the DEL could not look): by its owner.
        else if (i.owner !== undefined)
          await destroyPodPorts(d, i.owner.containerId, i.owner.ifname, serverId, [], spare);
        return false;
      });
    } catch (e) {
      L.failed(key, (e as Error).message, this.#c.now());
      throw e;
    }
    if (detached) {
      L.coolDown(i.owner!, { coolUntil: i.coolUntil!, detached: true }, this.#c.now());
      d.log.info("port detached; it keeps its address in Neutron while it cools down", {
        port: i.portId,
        ip: i.ip,
        seconds: Math.round((i.coolUntil! - now) / 1000),
      });
    } else L.released(key);
  }

  async undo(i: IntentRecord): Promise<void> {
    const d = await this.#d();
    const key = keyOf(i);
    const serverId = i.serverId || (await this.#server());
    try {
      await this.#c.unlocked(key, async () => {
        if (i.portId !== undefined) await destroyPort(d, i.portId, serverId);
        else if (i.owner !== undefined) await destroyPodPorts(d, i.owner.containerId, i.owner.ifname, serverId);
      });
    } catch (e) {
      this.#c.ledger.failed(key, (e as Error).message, this.#c.now());
      throw e;
    }
    this.#c.ledger.undo(key);
  }

  // Pool ports of this server that no record knows: adopted (attached, NIC here) or removed. By
  // tag, and by description: a port whose create answer was lost has no tags yet.
  async recover(): Promise<number> {
    const d = await this.#d();
    const serverId = await this.#server();
    const lists = await Promise.all([
      d.neutron.listPorts({ tags: `${ENI_POOL_TAG},${nodeTag(serverId)}` }),
      d.neutron.listPorts({ description: eniPoolDescription(serverId) }),
    ]);
    const ports = [...new Map(lists.flat().map((p) => [p.id, p])).values()];
    const L = this.#c.ledger;
    const known = new Set(L.all().map((r) => r.portId));
    const links = await d.kernel.listLinks(HOST);
    let adopted = 0;
    for (const p of ports) {
      if (known.has(p.id) || !this.#c.s.cfg.networks.includes(p.network_id)) continue;
      const nic = links.find((l) => l.mac === p.mac_address.toLowerCase() && l.master === undefined);
      const subnet = (await this.#subnets()).find((s) => p.fixed_ips.some((f) => f.subnet_id === s.id));
      const ip = p.fixed_ips[0]?.ip_address;
      if (p.device_id === serverId && nic !== undefined && subnet !== undefined && ip !== undefined && !L.knows(ip)) {
        L.adopt(this.#held(p, subnet, serverId, nic.name), this.#c.now());
        adopted++;
      } else await destroyPort(d, p.id, serverId);
    }
    this.unsure = false;
    return adopted;
  }

  // Off the pods' path: a taken port's tags say whose it is (DEL and GC find it by them even without
  // a record); a pool port's say it is the pool's.
  async relabel(): Promise<void> {
    const L = this.#c.ledger;
    const todo = L.all((r) => this.#c.mine(r) && (r.kind === "pod" || r.kind === "pool") && r.labelled !== true);
    if (todo.length === 0) return;
    const d = await this.#d();
    const serverId = await this.#server();
    for (const r of todo) {
      if (r.kind !== "pod" && r.kind !== "pool") continue;
      try {
        await d.neutron.setTags(
          "ports",
          r.portId,
          r.kind === "pod"
            ? podTags(r.owner, serverId, this.#c.s.cfg.cluster)
            : poolTags(serverId, this.#c.s.cfg.cluster),
        );
      } catch (e) {
        if (!isOpenStackError(e, "PortNotFound")) throw e;
      }
      const cur = L.get(keyOf(r));
      if (cur !== undefined && cur.kind === r.kind && cur.portId === r.portId) L.label(keyOf(r), true, this.#c.now());
    }
  }

  // DEL with no record: the pod's own port knows whose it is (tags, description, prevResult's MAC).
  // In the agent, with the cloud failing, the search is left to its upkeep and the DEL succeeds.
  async releaseUnknown(o: Owner, prev: CniResult | undefined): Promise<void> {
    const d = await this.#d();
    const L = this.#c.ledger;
    const macs = (prev?.interfaces ?? []).flatMap((i) => (i.mac === undefined ? [] : [i.mac]));
    // a port a record still names (a pool's, a cooling one) is not this DEL's to take
    const spare = new Set(L.all().flatMap((r) => (r.portId === undefined ? [] : [r.portId])));
    try {
      const ids = await destroyPodPorts(d, o.containerId, o.ifname, await this.#server(), macs, spare);
      if (ids.length > 0) d.log.info("released eni ports found by their owner (no local record)", { ports: ids });
    } catch (e) {
      if (!this.#c.resident || !isTransient(e)) throw e;
      const serverId = await this.#server().catch(() => "");
      L.searchLater(
        o,
        { mode: "eni", serverId, networkId: this.#c.s.cfg.networks[0]! },
        (e as Error).message,
        this.#c.now(),
      );
      d.log.warn("cannot look for this pod's port now; the agent releases it when the cloud answers", { error: e });
    }
  }

  // eni ports of this server that no record knows (a create whose answer was lost, a record lost
  // with the disk) and whose attachment is not valid: the runtime has forgotten them, so do we.
  async collectOrphans(valid: ReadonlySet<string>): Promise<string[]> {
    const d = await this.#d();
    const L = this.#c.ledger;
    const records = L.all();
    const owners = new Set(
      records.flatMap((r) =>
        r.kind === "pod" || (r.kind === "intent" && r.owner !== undefined) ? [ownerText(r.owner!)] : [],
      ),
    );
    const recorded = new Set(records.map((r) => r.portId));
    const errors: string[] = [];
    const serverId = await this.#server();
    for (const o of await serverEniPorts(d, serverId)) {
      const who = `${o.containerId}/${o.ifname}`;
      if (valid.has(who) || owners.has(who) || recorded.has(o.port.id)) continue;
      try {
        await destroyPort(d, o.port.id, o.port.device_id === "" ? serverId : o.port.device_id);
        d.log.info("GC released an eni port no record knew", {
          port: o.port.id,
          containerId: o.containerId,
          ifname: o.ifname,
        });
      } catch (e) {
        errors.push(`port ${o.port.id} of ${who}: ${(e as Error).message}`);
      }
    }
    return errors;
  }
}
