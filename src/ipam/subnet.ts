// What an address on a subnet tells the pod besides itself: prefix, gateway, DNS; and the CNI
// result of a pod's address.
import type { CniResult } from "../cni/result.js";
import { parseCidr } from "../net/ip.js";
import type { Subnet } from "../openstack/types.js";
import type { IpamConfig } from "./config.js";
import type { Address } from "./ledger/records.js";

/** What an allocation on `subnet` tells the pod besides its address: prefix, gateway, DNS. */
export function subnetFields(subnet: Subnet): Pick<Address, "prefix" | "gateway" | "dns"> {
  return {
    prefix: parseCidr(subnet.cidr).prefix,
    ...(subnet.gateway_ip === null ? {} : { gateway: subnet.gateway_ip }),
    ...(subnet.dns_nameservers.length === 0 ? {} : { dns: subnet.dns_nameservers }),
  };
}

/** The CNI result for a pod's address: its address, gateway and DNS, and the configured routes. */
export function allocationResult(a: Address, cfg: IpamConfig): CniResult {
  const r: CniResult = {
    interfaces:
      a.hostIfname === undefined ? [] : [{ name: a.hostIfname, ...(a.mac === undefined ? {} : { mac: a.mac }) }],
    ips:
      a.ip === undefined
        ? []
        : [{ address: `${a.ip}/${a.prefix ?? 32}`, ...(a.gateway === undefined ? {} : { gateway: a.gateway }) }],
    routes: cfg.routes.map((x) => ({ ...x })),
  };
  if (a.dns !== undefined && a.dns.length > 0) r.dns = { nameservers: [...a.dns] };
  return r;
}
