// The emulator's state: Keystone identities and tokens, Neutron resources in their wire shape,
// Nova servers. Serialisable as JSON (persistence, `/_tcnp/state`).
import type { FloatingIp, Network, Port, Router, SecurityGroup, Subnet } from "../openstack/types.js";

export interface UserRec {
  id: string;
  name: string;
  domain_id: string;
  password: string;
  enabled: boolean;
}
export interface ProjectRec {
  id: string;
  name: string;
  domain_id: string;
}
export interface AssignmentRec {
  user_id: string;
  project_id: string;
  role: string;
}
export interface AppCredRec {
  id: string;
  name: string;
  user_id: string;
  project_id: string;
  secret: string;
  roles: string[];
}
export interface TokenRec {
  id: string;
  user_id: string;
  project_id: string;
  roles: string[];
  methods: string[];
  issued_at: number;
  expires_at: number;
  app_cred_id?: string;
  revoked?: boolean;
}
export interface ServerRec {
  id: string;
  name: string;
  status: string;
  project_id: string;
  user_id: string;
  created: number;
  /** Ports Nova created itself (deleted with the server / on detach). */
  owned_ports: string[];
  locked: boolean;
  /** Hot-plug slots left. */
  pci_slots: number;
  metadata: Record<string, string>;
}

export interface World {
  domains: Array<{ id: string; name: string }>;
  users: UserRec[];
  projects: ProjectRec[];
  roles: string[];
  assignments: AssignmentRec[];
  appCreds: AppCredRec[];
  tokens: Record<string, TokenRec>;
  networks: Record<string, Network>;
  subnets: Record<string, Subnet>;
  ports: Record<string, Port>;
  routers: Record<string, Router>;
  floatingips: Record<string, FloatingIp>;
  securityGroups: Record<string, SecurityGroup>;
  servers: Record<string, ServerRec>;
}

export function emptyWorld(): World {
  return {
    domains: [{ id: "default", name: "Default" }],
    users: [],
    projects: [],
    roles: ["admin", "member", "reader"],
    assignments: [],
    appCreds: [],
    tokens: {},
    networks: {},
    subnets: {},
    ports: {},
    routers: {},
    floatingips: {},
    securityGroups: {},
    servers: {},
  };
}
