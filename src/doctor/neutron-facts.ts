// What Neutron holds for a pod: the port that should carry its address, the VM's own address,
// the subnet, the router with an interface on the pod's network, and whether policy allows us.
import { cidrContains, parseCidr, parseIp } from "../net/ip.js";
import type { Clients } from "../openstack/clients.js";
import { isOpenStackError } from "../openstack/errors.js";
import type { Port } from "../openstack/types.js";
import { readLedger } from "../ipam/ledger-files.js";
import { keyOf, ownerKey, type Rec } from "../ipam/ledger/records.js";
import { nodeIpOf } from "../ipam/tags.js";
import type { Attachment } from "./locate.js";
import type { Mode, NeutronFacts } from "./findings.js";

export const DEFAULT_ROUTE_LIMIT = 30;

async function portOf(
  c: Clients,
  a: Attachment,
  mode: Mode,
  ip: string,
  rec: Rec | undefined,
): Promise<Port | undefined> {
  if (rec?.portId !== undefined) {
    try {
      return await c.neutron.getPort(rec.portId);
    } catch (e) {
      if (!isOpenStackError(e, "PortNotFound")) throw e;
      return undefined;
    }
  }
  const byIp = await c.neutron.listPorts({ fixed_ips: `ip_address=${ip}` });
  if (byIp[0] !== undefined) return byIp[0];
  const mac = mode === "eni" ? a.result.interfaces.find((i) => i.name === a.ifname)?.mac : undefined;
  return mac === undefined ? undefined : (await c.neutron.listPorts({ mac_address: mac }))[0];
}

export async function neutronFacts(
  c: Clients,
  a: Attachment,
  mode: Mode,
  ip: string,
  opts: { stateDir: string; routeLimit?: number },
): Promise<NeutronFacts> {
  const out: NeutronFacts = {};
  try {
    const token = await c.session.token();
    // A token cached without roles: whether we are admin is unknown, not "no".
    if (token.roles !== undefined) out.isAdmin = token.roles.includes("admin");
    const own = ownerKey({ containerId: a.containerId, ifname: a.ifname });
    const rec = readLedger(opts.stateDir).find((r) => keyOf(r) === own);
    const port = await portOf(c, a, mode, ip, rec);
    if (port === undefined)
      out.portError =
        rec?.portId === undefined ? `no port has ${ip}` : `port ${rec.portId} (recorded at ADD) does not exist`;
    else out.port = { id: port.id, ips: port.fixed_ips.map((f) => f.ip_address), mac: port.mac_address };
    if (mode === "mix" && port !== undefined) {
      const nodeIp = nodeIpOf(port);
      if (nodeIp !== undefined) out.nodeIp = nodeIp;
    }
    const networkId = port?.network_id ?? rec?.networkId;
    if (networkId === undefined) return out;
    const [net, subnets, routerPorts] = await Promise.all([
      c.neutron.getNetwork(networkId),
      c.neutron.listSubnets({ network_id: networkId }),
      c.neutron.listPorts({ network_id: networkId, device_owner: "network:router_interface" }),
    ]);
    out.networkProjectMatches = net.project_id === undefined || net.project_id === token.projectId;
    const sub = subnets.find((s) => s.ip_version === 4 && cidrContains(parseCidr(s.cidr), parseIp(ip)));
    if (sub !== undefined)
      out.subnet = {
        id: sub.id,
        cidr: sub.cidr,
        enableDhcp: sub.enable_dhcp,
        onRouter: routerPorts.some((p) => p.fixed_ips.some((f) => f.subnet_id === sub.id)),
      };
    const routerId = routerPorts[0]?.device_id;
    if (routerId !== undefined && routerId !== "") {
      const r = await c.neutron.getRouter(routerId);
      out.router = {
        id: r.id,
        name: r.name === "" ? r.id : r.name,
        routes: r.routes,
        limit: opts.routeLimit ?? DEFAULT_ROUTE_LIMIT,
      };
    }
  } catch (e) {
    out.error = (e as Error).message;
  }
  return out;
}
