// Floating IPs for pods. A pod asks with the annotation `tcnp.io/floating-ip`: "auto" (a new
// floating IP is allocated on the configured external network) or an address (an existing floating
// IP of the project). The controller associates it with the pod's address on the port that holds
// it (the VM's port in mix mode, the pod's own port in eni mode), writes the address back on the
// pod (`tcnp.io/floating-ip-address`, and an event), and lets it go with the pod: an allocated one
// is deleted, a given one is disassociated. What tcnp did is written in the floating IP's
// description, so nothing else is ever touched.
import type { Logger } from "../log/logger.js";
import type { Neutron } from "../openstack/neutron.js";
import type { FloatingIp } from "../openstack/types.js";
import type { Kube, PodInfo } from "./kube.js";

/** Where pods come from: the Kubernetes API (or the lab's own list of its pods). */
export type PodSource = Pick<Kube, "listPods" | "annotatePod" | "createEvent">;

export const FIP_ANNOTATION = "tcnp.io/floating-ip";
export const FIP_ADDRESS_ANNOTATION = "tcnp.io/floating-ip-address";
const ALLOCATED = "tcnp floating IP of pod ";
const ASSOCIATED = "tcnp associated with pod ";
const COMPONENT = "vrouter-route-controller";

export interface FloatingSyncResult {
  associated: number;
  released: number;
  failed: number;
}

const podUid = (f: FloatingIp): string | undefined => {
  const d = f.description ?? "";
  if (d.startsWith(ALLOCATED)) return d.slice(ALLOCATED.length);
  if (d.startsWith(ASSOCIATED)) return d.slice(ASSOCIATED.length);
  return undefined;
};

/** One pass: every annotated pod with an address gets its floating IP; those of pods gone are let go. */
export async function syncFloatingIps(d: {
  neutron: Neutron;
  kube: PodSource;
  /** The external network floating IPs come from. */
  network: string;
  /** The pod networks (where the pods' ports are). */
  networks: readonly string[];
  log: Logger;
  now: () => number;
}): Promise<FloatingSyncResult> {
  const { neutron, kube, log } = d;
  const out = { associated: 0, released: 0, failed: 0 };
  const pods = (await kube.listPods()).filter((p) => p.annotations?.[FIP_ANNOTATION] !== undefined);
  const fips = await neutron.listFloatingIps({ floating_network_id: d.network });
  const keep = new Set<string>();
  const event = (pod: PodInfo, reason: string, message: string, type: "Warning" | "Normal"): Promise<void> =>
    kube.createEvent(pod, reason, message, COMPONENT, new Date(d.now()), type).catch((e: unknown) => {
      log.warn("cannot post a Kubernetes event", { error: e });
    });
  for (const pod of pods) {
    const want = pod.annotations![FIP_ANNOTATION]!.trim();
    const mine = fips.find((f) => podUid(f) === pod.uid);
    if (mine !== undefined) keep.add(mine.id);
    if (pod.ip === undefined) continue;
    const port = (await neutron.listPorts({ fixed_ips: `ip_address=${pod.ip}` })).find((p) =>
      d.networks.includes(p.network_id),
    );
    if (port === undefined) continue; // the address is not on a port yet (ADD in progress)
    try {
      let fip: FloatingIp | undefined =
        want === "auto" ? fips.find((f) => f.description === `${ALLOCATED}${pod.uid}`) : undefined;
      if (want !== "auto") {
        fip = fips.find((f) => f.floating_ip_address === want);
        if (fip === undefined) {
          await event(pod, "FloatingIPNotFound", `No floating IP ${want} on network ${d.network}`, "Warning");
          out.failed++;
          continue;
        }
        const holder = podUid(fip);
        if (
          fip.port_id !== null &&
          holder !== pod.uid &&
          !(fip.port_id === port.id && fip.fixed_ip_address === pod.ip)
        ) {
          await event(pod, "FloatingIPInUse", `Floating IP ${want} is associated with something else`, "Warning");
          out.failed++;
          continue;
        }
      }
      if (fip === undefined) {
        fip = await neutron.createFloatingIp({
          floating_network_id: d.network,
          port_id: port.id,
          fixed_ip_address: pod.ip,
          description: `${ALLOCATED}${pod.uid}`,
        });
        out.associated++;
      } else if (fip.port_id !== port.id || fip.fixed_ip_address !== pod.ip) {
        fip = await neutron.updateFloatingIp(fip.id, {
          port_id: port.id,
          fixed_ip_address: pod.ip,
          ...(want === "auto" ? {} : { description: `${ASSOCIATED}${pod.uid}` }),
        });
        out.associated++;
      }
      keep.add(fip.id);
      if (pod.annotations?.[FIP_ADDRESS_ANNOTATION] !== fip.floating_ip_address) {
        await kube.annotatePod(pod, { [FIP_ADDRESS_ANNOTATION]: fip.floating_ip_address });
        await event(
          pod,
          "FloatingIPAssociated",
          `Floating IP ${fip.floating_ip_address} maps to ${pod.ip} (port ${port.id})`,
          "Normal",
        );
        log.info("floating IP associated with a pod", {
          pod: `${pod.namespace}/${pod.name}`,
          floatingIp: fip.floating_ip_address,
          ip: pod.ip,
        });
      }
    } catch (e) {
      out.failed++;
      await event(pod, "FloatingIPFailed", `Cannot associate a floating IP: ${(e as Error).message}`, "Warning");
      log.warn("cannot associate a floating IP with a pod", { pod: `${pod.namespace}/${pod.name}`, error: e });
    }
  }
  // Pods gone (or no longer asking): allocated floating IPs are deleted, given ones disassociated.
  for (const f of fips) {
    const uid = podUid(f);
    if (uid === undefined || keep.has(f.id)) continue;
    try {
      if (f.description?.startsWith(ALLOCATED) === true) await neutron.deleteFloatingIp(f.id);
      else await neutron.updateFloatingIp(f.id, { port_id: null, description: "" });
      out.released++;
      log.info("floating IP released (its pod is gone)", { floatingIp: f.floating_ip_address, pod: uid });
    } catch (e) {
      out.failed++;
      log.warn("cannot release a floating IP", { floatingIp: f.floating_ip_address, error: e });
    }
  }
  return out;
}
