// A small cloud's data plane on one kernel, all inside namespaces we create: each Neutron network is
// a bridge in the "net" namespace; a router namespace holds the subnets' gateway addresses (with the
// router ports' MACs) and connects a service namespace (the cloud's API and metadata address) and an
// external client; each VM is a namespace whose NICs sit on the bridges with their Neutron MAC and
// address. Nothing touches the machine's own namespace.
import { namedNetns, netnsName, type Kernel } from "../kernel/types.js";
import { formatIp, networkOf, parseCidr } from "../net/ip.js";

export interface TopoNetwork {
  /** Neutron network ID (the data-path map key). */
  id: string;
  cidr: string;
  gateway: string;
  /** MAC of the router's interface port on this network. */
  routerMac: string;
  mtu: number;
}

export interface TopoNic {
  name: string;
  network: string;
  mac: string;
  ip: string;
}

export interface TopoVm {
  /** Short name (vm1, vm2 …); the namespace is `<prefix>-<name>`. */
  name: string;
  serverId: string;
  nics: TopoNic[];
  /** The NIC whose network's gateway is the default route. */
  defaultVia: string;
}

export interface TopologySpec {
  /** Names are `<prefix>-net`, `<prefix>-rtr`, ...; keep it short (≤ 20 chars). */
  prefix: string;
  networks: TopoNetwork[];
  vms: TopoVm[];
  /** The cloud's service address (router side is .1 of the /30). */
  serviceCidr: string;
  /** The external network behind the router: router .1, client .10. */
  externalCidr: string;
}

export interface Topology {
  spec: TopologySpec;
  ns: { net: string; router: string; svc: string; ext: string; vms: Record<string, string> };
  bridge(networkId: string): string;
  serviceIp: string;
  routerServiceIp: string;
  externalClientIp: string;
  routerExternalIp: string;
}

const host = (cidr: string, n: bigint): string =>
  formatIp({ family: 4, value: networkOf(parseCidr(cidr)).ip.value + n });

export function describeTopology(spec: TopologySpec): Topology {
  const vms: Record<string, string> = {};
  for (const vm of spec.vms) vms[vm.name] = namedNetns(`${spec.prefix}-${vm.name}`);
  const bridges = new Map(spec.networks.map((n, i) => [n.id, `br${i}`]));
  return {
    spec,
    ns: {
      net: namedNetns(`${spec.prefix}-net`),
      router: namedNetns(`${spec.prefix}-rtr`),
      svc: namedNetns(`${spec.prefix}-svc`),
      ext: namedNetns(`${spec.prefix}-ext`),
      vms,
    },
    bridge: (id) => {
      const b = bridges.get(id);
      if (b === undefined) throw new Error(`No bridge for network ${id}`);
      return b;
    },
    serviceIp: host(spec.serviceCidr, 2n),
    routerServiceIp: host(spec.serviceCidr, 1n),
    externalClientIp: host(spec.externalCidr, 10n),
    routerExternalIp: host(spec.externalCidr, 1n),
  };
}

export const topologyNamespaces = (t: Topology): string[] => [
  t.ns.net,
  t.ns.router,
  t.ns.svc,
  t.ns.ext,
  ...Object.values(t.ns.vms),
];

/** Build it. On failure, what was built is removed before the error is rethrown. */
export async function buildTopology(
  k: Kernel,
  spec: TopologySpec,
  onStep: (msg: string) => void = () => {},
): Promise<Topology> {
  const t = describeTopology(spec);
  try {
    for (const ns of topologyNamespaces(t)) await k.createNetns(netnsName(ns));
    for (const ns of topologyNamespaces(t)) await k.setLink(ns, "lo", { up: true });
    onStep(`namespaces: ${topologyNamespaces(t).map(netnsName).join(", ")}`);

    for (const n of spec.networks) {
      const br = t.bridge(n.id);
      await k.createLink(t.ns.net, { name: br, kind: "bridge", mtu: n.mtu });
      await k.setLink(t.ns.net, br, { up: true });
      // The router's interface on this network.
      const qr = `qr-${br}`;
      await k.createVeth(t.ns.router, {
        name: qr,
        mac: n.routerMac,
        mtu: n.mtu,
        peer: { name: `r-${br}`, netns: t.ns.net, mtu: n.mtu },
      });
      await k.setLink(t.ns.net, `r-${br}`, { master: br, up: true });
      await k.addAddress(t.ns.router, { cidr: `${n.gateway}/${parseCidr(n.cidr).prefix}`, dev: qr });
      await k.setLink(t.ns.router, qr, { up: true });
      onStep(`network ${n.id}: bridge ${br}, router ${n.gateway} (${n.routerMac})`);
    }
    k.writeSysctl(t.ns.router, "net.ipv4.ip_forward", "1");

    // Service side: the cloud's API address, and the metadata address on its loopback.
    const svcPrefix = parseCidr(spec.serviceCidr).prefix;
    await k.createVeth(t.ns.router, { name: "qsvc", peer: { name: "eth0", netns: t.ns.svc } });
    await k.addAddress(t.ns.router, { cidr: `${t.routerServiceIp}/${svcPrefix}`, dev: "qsvc" });
    await k.setLink(t.ns.router, "qsvc", { up: true });
    await k.addAddress(t.ns.svc, { cidr: `${t.serviceIp}/${svcPrefix}`, dev: "eth0" });
    await k.setLink(t.ns.svc, "eth0", { up: true });
    await k.addAddress(t.ns.svc, { cidr: "169.254.169.254/32", dev: "lo" });
    await k.addRoute(t.ns.svc, { dst: "0.0.0.0/0", gw: t.routerServiceIp, dev: "eth0" });
    await k.addRoute(t.ns.router, { dst: "169.254.169.254/32", gw: t.serviceIp, dev: "qsvc" });
    onStep(`cloud service address ${t.serviceIp}, metadata 169.254.169.254`);

    // External side: a client outside every Neutron subnet.
    const extPrefix = parseCidr(spec.externalCidr).prefix;
    await k.createVeth(t.ns.router, { name: "qg", peer: { name: "eth0", netns: t.ns.ext } });
    await k.addAddress(t.ns.router, { cidr: `${t.routerExternalIp}/${extPrefix}`, dev: "qg" });
    await k.setLink(t.ns.router, "qg", { up: true });
    await k.addAddress(t.ns.ext, { cidr: `${t.externalClientIp}/${extPrefix}`, dev: "eth0" });
    await k.setLink(t.ns.ext, "eth0", { up: true });
    await k.addRoute(t.ns.ext, { dst: "0.0.0.0/0", gw: t.routerExternalIp, dev: "eth0" });
    onStep(`external client ${t.externalClientIp} behind the router`);

    for (const vm of spec.vms) {
      const ns = t.ns.vms[vm.name]!;
      for (const nic of vm.nics) {
        const net = spec.networks.find((n) => n.id === nic.network);
        if (net === undefined) throw new Error(`VM ${vm.name}: unknown network ${nic.network}`);
        const br = t.bridge(net.id);
        const peer = `${vm.name}-${nic.name}`.slice(0, 15);
        await k.createVeth(t.ns.net, {
          name: peer,
          mtu: net.mtu,
          peer: { name: nic.name, netns: ns, mac: nic.mac, mtu: net.mtu },
        });
        await k.setLink(t.ns.net, peer, { master: br, up: true });
        await k.addAddress(ns, { cidr: `${nic.ip}/${parseCidr(net.cidr).prefix}`, dev: nic.name });
        await k.setLink(ns, nic.name, { up: true });
        if (nic.name === vm.defaultVia) await k.addRoute(ns, { dst: "0.0.0.0/0", gw: net.gateway, dev: nic.name });
      }
      // A Kubernetes node forwards (kubelet and kube-proxy require it).
      k.writeSysctl(ns, "net.ipv4.ip_forward", "1");
      onStep(`VM ${vm.name} (${vm.serverId}): ${vm.nics.map((n) => `${n.name} ${n.ip} ${n.mac}`).join(", ")}`);
    }
    return t;
  } catch (e) {
    await destroyTopology(k, t);
    throw e;
  }
}

/** Remove every namespace of the topology (links inside go with them). Missing ones are fine. */
export async function destroyTopology(k: Kernel, t: Topology): Promise<void> {
  for (const ns of topologyNamespaces(t).reverse()) await k.deleteNetns(netnsName(ns));
}
