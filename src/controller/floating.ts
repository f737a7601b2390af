// Floating IPs for pods, as the operator grants them. A pod asks with the annotation
// `tcnp.io/floating-ip`: "auto" (a new floating IP is allocated on the external network) or an
// address (an existing floating IP). The controller associates it with the pod's address on the port
// that holds it (the VM's port in mix mode, the pod's own port in eni mode), writes the address back
// on the pod (`tcnp.io/floating-ip-address`, and an event), and lets it go when the pod finishes or
// goes; it stays reserved for that pod's name for a while (a restarted StatefulSet pod gets it back),
// then an allocated one is deleted and a given one handed back to the operator.
//
// Who may get what (README, "Operations"):
// - only pods of namespaces the configuration grants; `auto` only where the grant says so, and a
//   namespace holds at most `max` floating IPs at once;
// - an address by name only when the operator tagged it `tcnp-grant=<cluster>/<namespace>`;
// - never one that is associated with something else, or held or reserved for another pod;
// - never for a pod on the host network, a finished pod or one being deleted.
// What this cluster holds is tagged `tcnp-cluster=<cluster>` and `tcnp-pod=<namespace>/<name>`: no
// other floating IP is ever changed, and the operator's description is left alone. Every change of
// an association is guarded by the floating IP's revision (If-Match): a concurrent writer's change
// is never overwritten.
import type { Logger } from "../log/logger.js";
import { isOpenStackError } from "../openstack/errors.js";
import type { Neutron } from "../openstack/neutron.js";
import type { FloatingIp, Port } from "../openstack/types.js";
import type { FloatingIpConfig } from "./config.js";
import type { Kube, PodInfo } from "./kube.js";

/** Where pods come from: the Kubernetes API (or the lab's own list of its pods). */
export type PodSource = Pick<Kube, "listPods" | "annotatePod" | "createEvent">;

export const FIP_ANNOTATION = "tcnp.io/floating-ip";
export const FIP_ADDRESS_ANNOTATION = "tcnp.io/floating-ip-address";
const COMPONENT = "vrouter-route-controller";

const CLUSTER_TAG = "tcnp-cluster=";
const POD_TAG = "tcnp-pod=";
const RELEASED_TAG = "tcnp-released-at=";
const ALLOCATED_TAG = "tcnp-allocated";
/** The operator's grant of one floating IP to one namespace of one cluster. */
export const grantTag = (cluster: string, namespace: string): string => `tcnp-grant=${cluster}/${namespace}`;
/** How an allocated floating IP whose tags were never written (a create answer lost) is found. */
const allocatedDescription = (cluster: string, pod: string): string =>
  `tcnp floating IP of pod ${pod} in cluster ${cluster}`;

/** Descriptions of earlier versions (cluster "default" takes them over). */
const LEGACY = /^tcnp (floating IP of|associated with) pod /;

export interface FloatingSyncResult {
  associated: number;
  released: number;
  failed: number;
}

const tagValue = (f: FloatingIp, prefix: string): string | undefined =>
  f.tags.find((t) => t.startsWith(prefix))?.slice(prefix.length);

export async function syncFloatingIps(d: {
  neutron: Neutron;
  kube: PodSource;
  cfg: FloatingIpConfig;
  cluster: string;
  /** The pod networks (where the pods' ports are). */
  networks: readonly string[];
  log: Logger;
  now: () => number;
}): Promise<FloatingSyncResult> {
  const { neutron, kube, log, cluster, cfg } = d;
  const out = { associated: 0, released: 0, failed: 0 };
  const now = d.now();
  const allPods = await kube.listPods();
  const fips = await neutron.listFloatingIps({ floating_network_id: cfg.network });
  const key = (p: PodInfo): string => `${p.namespace}/${p.name}`;
  const ours = (f: FloatingIp): boolean =>
    tagValue(f, CLUSTER_TAG) === cluster ||
    (cluster === "default" && tagValue(f, CLUSTER_TAG) === undefined && LEGACY.test(f.description ?? "")) ||
    (tagValue(f, CLUSTER_TAG) === undefined &&
      (f.description ?? "").endsWith(` in cluster ${cluster}`) &&
      (f.description ?? "").startsWith("tcnp floating IP of pod "));
  const holder = (f: FloatingIp): string | undefined =>
    tagValue(f, POD_TAG) ?? /^tcnp floating IP of pod (\S+) in cluster /.exec(f.description ?? "")?.[1];
  const event = (pod: PodInfo, reason: string, message: string, type: "Warning" | "Normal"): Promise<void> =>
    kube.createEvent(pod, reason, message, COMPONENT, new Date(now), type).catch((e: unknown) => {
      log.warn("cannot post a Kubernetes event", { error: e });
    });
  // A pod that may hold a floating IP: alive, its own address, not being deleted.
  const eligible = (p: PodInfo): boolean =>
    p.hostNetwork !== true && p.deleting !== true && p.phase !== "Succeeded" && p.phase !== "Failed";
  const alive = new Map(allPods.filter(eligible).map((p) => [key(p), p]));
  // A reservation holds while its pod lives (by name), and for a while after it went.
  const reserved = (f: FloatingIp): boolean => {
    const h = holder(f);
    if (h === undefined) return false;
    if (alive.has(h)) return true;
    const at = Number(tagValue(f, RELEASED_TAG));
    return !Number.isFinite(at) || now - at * 1000 < cfg.reservationMs;
  };

  const keep = new Set<string>();
  const claimedNow = new Set<string>();
  const asking = [...alive.values()]
    .filter((p) => p.annotations?.[FIP_ANNOTATION] !== undefined)
    // the oldest asks first: of two pods naming one address in one pass, the older gets it
    .sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0) || key(a).localeCompare(key(b)));
  const heldBy = (ns: string): number => fips.filter((f) => ours(f) && holder(f)?.startsWith(`${ns}/`) === true).length;

  for (const pod of asking) {
    const want = pod.annotations![FIP_ANNOTATION]!.trim();
    const grant = cfg.namespaces[pod.namespace];
    const mine = fips.find(
      (f) =>
        ours(f) &&
        holder(f) === key(pod) &&
        (want === "auto" ? f.tags.includes(ALLOCATED_TAG) || f.tags.length === 0 : f.floating_ip_address === want),
    );
    if (mine !== undefined) keep.add(mine.id);
    if (grant === undefined) {
      await refuse(
        pod,
        "FloatingIPNotGranted",
        `Namespace ${pod.namespace} is not granted floating IPs (floatingIps.namespaces)`,
      );
      continue;
    }
    if (pod.ip === undefined) continue;
    const port = (await neutron.listPorts({ fixed_ips: `ip_address=${pod.ip}` })).find((p) =>
      d.networks.includes(p.network_id),
    );
    if (port === undefined) continue; // the address is not on a port yet (ADD in progress)
    try {
      let fip = mine;
      if (want === "auto") {
        if (!grant.auto) {
          await refuse(pod, "FloatingIPNotGranted", `Namespace ${pod.namespace} may not ask for "auto" floating IPs`);
          continue;
        }
        if (fip === undefined) {
          if (heldBy(pod.namespace) >= grant.max) {
            await refuse(
              pod,
              "FloatingIPQuota",
              `Namespace ${pod.namespace} holds its maximum of ${grant.max} floating IP(s)`,
            );
            continue;
          }
          fip = await allocate(pod, port);
        }
      } else {
        const f = fips.find((x) => x.floating_ip_address === want);
        if (f === undefined) {
          await refuse(pod, "FloatingIPNotFound", `No floating IP ${want} on network ${cfg.network}`);
          continue;
        }
        if (!f.tags.includes(grantTag(cluster, pod.namespace))) {
          await refuse(
            pod,
            "FloatingIPNotGranted",
            `Floating IP ${want} is not granted to namespace ${pod.namespace} (tag ${grantTag(cluster, pod.namespace)})`,
          );
          continue;
        }
        const h = ours(f) ? holder(f) : undefined;
        const elsewhere = f.port_id !== null && !(f.port_id === port.id && f.fixed_ip_address === pod.ip);
        if (
          (h !== undefined && h !== key(pod) && reserved(f)) ||
          claimedNow.has(f.id) ||
          (elsewhere && h !== key(pod))
        ) {
          await refuse(
            pod,
            "FloatingIPInUse",
            `Floating IP ${want} is held or reserved for another pod, or associated with something else`,
          );
          continue;
        }
        if (h === undefined && heldBy(pod.namespace) >= grant.max) {
          await refuse(
            pod,
            "FloatingIPQuota",
            `Namespace ${pod.namespace} holds its maximum of ${grant.max} floating IP(s)`,
          );
          continue;
        }
        fip = f;
      }
      claimedNow.add(fip.id);
      keep.add(fip.id);
      fip = await associate(fip, pod, port);
      if (pod.annotations?.[FIP_ADDRESS_ANNOTATION] !== fip.floating_ip_address) {
        await kube.annotatePod(pod, { [FIP_ADDRESS_ANNOTATION]: fip.floating_ip_address });
        await event(
          pod,
          "FloatingIPAssociated",
          `Floating IP ${fip.floating_ip_address} maps to ${pod.ip} (port ${port.id})`,
          "Normal",
        );
        log.info("floating IP associated with a pod", {
          pod: key(pod),
          floatingIp: fip.floating_ip_address,
          ip: pod.ip,
        });
      }
    } catch (e) {
      out.failed++;
      await event(pod, "FloatingIPFailed", `Cannot associate a floating IP: ${(e as Error).message}`, "Warning");
      log.warn("cannot associate a floating IP with a pod", { pod: key(pod), error: e });
    }
  }

  // This cluster's floating IPs no pod keeps: disassociated and reserved for their pod's name; once
  // the reservation ends, an allocated one is deleted and a given one handed back (tcnp's tags off).
  for (const f of fips) {
    if (!ours(f) || keep.has(f.id)) continue;
    try {
      const allocated = f.tags.includes(ALLOCATED_TAG) || !f.tags.some((t) => t.startsWith(CLUSTER_TAG));
      if (f.port_id !== null) {
        await neutron.updateFloatingIp(f.id, { port_id: null }, f.revision_number);
        await neutron.setTags("floatingips", f.id, [
          ...f.tags.filter((t) => !t.startsWith(RELEASED_TAG)),
          ...(f.tags.some((t) => t.startsWith(CLUSTER_TAG))
            ? []
            : [
                `${CLUSTER_TAG}${cluster}`,
                ALLOCATED_TAG,
                ...(holder(f) === undefined ? [] : [`${POD_TAG}${holder(f)}`]),
              ]),
          `${RELEASED_TAG}${Math.floor(now / 1000)}`,
        ]);
        out.released++;
        log.info("floating IP disassociated (its pod is gone or finished); reserved for its name", {
          floatingIp: f.floating_ip_address,
          pod: holder(f),
        });
      } else if (!reserved(f)) {
        if (allocated) await neutron.deleteFloatingIp(f.id);
        else
          await neutron.setTags(
            "floatingips",
            f.id,
            f.tags.filter((t) => !t.startsWith(CLUSTER_TAG) && !t.startsWith(POD_TAG) && !t.startsWith(RELEASED_TAG)),
          );
        out.released++;
        log.info("floating IP let go (its reservation ended)", {
          floatingIp: f.floating_ip_address,
          deleted: allocated,
        });
      }
    } catch (e) {
      out.failed++;
      log.warn("cannot release a floating IP", { floatingIp: f.floating_ip_address, error: e });
    }
  }
  return out;

  async function refuse(pod: PodInfo, reason: string, message: string): Promise<void> {
    out.failed++;
    await event(pod, reason, message, "Warning");
  }

  async function allocate(pod: PodInfo, port: Port): Promise<FloatingIp> {
    const f = await neutron.createFloatingIp({
      floating_network_id: cfg.network,
      port_id: port.id,
      fixed_ip_address: pod.ip,
      description: allocatedDescription(cluster, key(pod)),
    });
    await neutron.setTags("floatingips", f.id, [`${CLUSTER_TAG}${cluster}`, `${POD_TAG}${key(pod)}`, ALLOCATED_TAG]);
    out.associated++;
    return { ...f, tags: [`${CLUSTER_TAG}${cluster}`, `${POD_TAG}${key(pod)}`, ALLOCATED_TAG] };
  }

  // The pod's name on it (tags), then the association, guarded by the revision it was read at.
  async function associate(f: FloatingIp, pod: PodInfo, port: Port): Promise<FloatingIp> {
    const tags = [
      ...f.tags.filter((t) => !t.startsWith(CLUSTER_TAG) && !t.startsWith(POD_TAG) && !t.startsWith(RELEASED_TAG)),
      `${CLUSTER_TAG}${cluster}`,
      `${POD_TAG}${key(pod)}`,
    ];
    let cur = f;
    if (tags.length !== f.tags.length || !tags.every((t) => f.tags.includes(t))) {
      await neutron.setTags("floatingips", f.id, tags);
      // the tags moved its revision on; what else changed since the list, If-Match still catches
      const now = await neutron.getFloatingIp(f.id);
      if (now.port_id !== f.port_id || now.fixed_ip_address !== f.fixed_ip_address)
        throw new Error(`floating IP ${f.floating_ip_address} changed meanwhile; tried again next pass`);
      cur = now;
    }
    if (cur.port_id === port.id && cur.fixed_ip_address === pod.ip) return cur;
    try {
      const updated = await neutron.updateFloatingIp(
        f.id,
        { port_id: port.id, fixed_ip_address: pod.ip },
        cur.revision_number,
      );
      out.associated++;
      return updated;
    } catch (e) {
      if (isOpenStackError(e, "RevisionNumberConstraintFailed"))
        throw new Error(`floating IP ${f.floating_ip_address} changed meanwhile (412); tried again next pass`, {
          cause: e,
        });
      throw e;
    }
  }
}
