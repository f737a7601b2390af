// Wire shapes of the OpenStack resources tcnp reads and writes (snake_case stays at this boundary).

export interface FixedIp {
  subnet_id: string;
  ip_address: string;
}

export interface Port {
  id: string;
  name: string;
  description?: string;
  network_id: string;
  project_id?: string;
  tenant_id?: string;
  mac_address: string;
  admin_state_up?: boolean;
  status: string;
  device_id: string;
  device_owner: string;
  fixed_ips: FixedIp[];
  allowed_address_pairs?: Array<{ ip_address: string; mac_address?: string }>;
  security_groups?: string[];
  port_security_enabled?: boolean;
  "binding:host_id"?: string;
  "binding:vif_type"?: string;
  revision_number: number;
  tags: string[];
  created_at?: string;
  updated_at?: string;
}

export interface Network {
  id: string;
  name: string;
  status: string;
  subnets: string[];
  mtu?: number;
  shared?: boolean;
  "router:external"?: boolean;
  port_security_enabled?: boolean;
  project_id?: string;
  tenant_id?: string;
  revision_number: number;
  tags: string[];
}

export interface AllocationPool {
  start: string;
  end: string;
}

export interface Subnet {
  id: string;
  name: string;
  network_id: string;
  cidr: string;
  ip_version: 4 | 6;
  gateway_ip: string | null;
  allocation_pools: AllocationPool[];
  host_routes: Array<{ destination: string; nexthop: string }>;
  dns_nameservers: string[];
  enable_dhcp: boolean;
  project_id?: string;
  tenant_id?: string;
  revision_number: number;
  tags: string[];
}

export interface RouterRoute {
  destination: string;
  nexthop: string;
}

export interface Router {
  id: string;
  name: string;
  status: string;
  admin_state_up?: boolean;
  external_gateway_info: null | { network_id: string; external_fixed_ips?: FixedIp[]; enable_snat?: boolean };
  routes: RouterRoute[];
  project_id?: string;
  tenant_id?: string;
  revision_number: number;
  tags: string[];
}

export interface FloatingIp {
  id: string;
  floating_ip_address: string;
  floating_network_id: string;
  router_id: string | null;
  port_id: string | null;
  fixed_ip_address: string | null;
  status: string;
  project_id?: string;
  revision_number: number;
  tags: string[];
  description?: string;
}

export interface SecurityGroup {
  id: string;
  name: string;
  project_id?: string;
}

export interface Extension {
  alias: string;
  name: string;
  description?: string;
  updated?: string;
}

export interface InterfaceAttachment {
  port_id: string;
  net_id: string;
  mac_addr: string;
  port_state: string;
  fixed_ips: FixedIp[];
}

export interface Server {
  id: string;
  name: string;
  status: string;
  tenant_id?: string;
  addresses?: Record<string, Array<{ addr: string; version: number; "OS-EXT-IPS-MAC:mac_addr"?: string }>>;
}
