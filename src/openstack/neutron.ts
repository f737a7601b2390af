// Neutron v2.0: the calls tcnp makes, typed. One method per API call; no policy here.
import type { OpenStackSession } from "./session.js";
import { query } from "./session.js";
import type {
  Extension,
  FixedIp,
  FloatingIp,
  Network,
  Port,
  Router,
  RouterRoute,
  SecurityGroup,
  Subnet,
} from "./types.js";

type Filters = Record<string, string | number | boolean | ReadonlyArray<string> | undefined>;
/** The collections tcnp tags (standard attributes). */
export type TaggedCollection = "ports" | "routers" | "networks" | "floatingips";

const ifMatch = (rev: number | undefined): Record<string, string> =>
  rev === undefined ? {} : { "if-match": `revision_number=${rev}` };

export class Neutron {
  readonly #s: OpenStackSession;
  constructor(session: OpenStackSession) {
    this.#s = session;
  }

  async extensions(): Promise<Set<string>> {
    const r = await this.#s.request<{ extensions: Extension[] }>("network", "GET", "/v2.0/extensions");
    return new Set(r.body.extensions.map((e) => e.alias));
  }

  // networks and subnets
  async getNetwork(id: string): Promise<Network> {
    return (await this.#s.request<{ network: Network }>("network", "GET", `/v2.0/networks/${id}`)).body.network;
  }
  async listNetworks(f: Filters = {}): Promise<Network[]> {
    return (await this.#s.request<{ networks: Network[] }>("network", "GET", `/v2.0/networks${query(f)}`)).body
      .networks;
  }
  async createNetwork(body: Record<string, unknown>): Promise<Network> {
    return (
      await this.#s.request<{ network: Network }>("network", "POST", "/v2.0/networks", { body: { network: body } })
    ).body.network;
  }
  async deleteNetwork(id: string): Promise<void> {
    await this.#s.request("network", "DELETE", `/v2.0/networks/${id}`, { retry: true });
  }
  async getSubnet(id: string): Promise<Subnet> {
    return (await this.#s.request<{ subnet: Subnet }>("network", "GET", `/v2.0/subnets/${id}`)).body.subnet;
  }
  async listSubnets(f: Filters = {}): Promise<Subnet[]> {
    return (await this.#s.request<{ subnets: Subnet[] }>("network", "GET", `/v2.0/subnets${query(f)}`)).body.subnets;
  }
  async createSubnet(body: Record<string, unknown>): Promise<Subnet> {
    return (await this.#s.request<{ subnet: Subnet }>("network", "POST", "/v2.0/subnets", { body: { subnet: body } }))
      .body.subnet;
  }
  async deleteSubnet(id: string): Promise<void> {
    await this.#s.request("network", "DELETE", `/v2.0/subnets/${id}`, { retry: true });
  }

  // ports
  async getPort(id: string): Promise<Port> {
    return (await this.#s.request<{ port: Port }>("network", "GET", `/v2.0/ports/${id}`)).body.port;
  }
  async listPorts(f: Filters = {}): Promise<Port[]> {
    return (await this.#s.request<{ ports: Port[] }>("network", "GET", `/v2.0/ports${query(f)}`)).body.ports;
  }
  async createPort(body: Record<string, unknown>): Promise<Port> {
    return (await this.#s.request<{ port: Port }>("network", "POST", "/v2.0/ports", { body: { port: body } })).body
      .port;
  }
  /** PUT a port; with `revision`, only if it is still at that revision (412 otherwise). */
  async updatePort(id: string, body: Record<string, unknown>, revision?: number): Promise<Port> {
    return (
      await this.#s.request<{ port: Port }>("network", "PUT", `/v2.0/ports/${id}`, {
        body: { port: body },
        headers: ifMatch(revision),
      })
    ).body.port;
  }
  async updateFixedIps(id: string, fixedIps: ReadonlyArray<Partial<FixedIp>>, revision?: number): Promise<Port> {
    return this.updatePort(id, { fixed_ips: fixedIps }, revision);
  }
  async deletePort(id: string): Promise<void> {
    await this.#s.request("network", "DELETE", `/v2.0/ports/${id}`, { retry: true });
  }

  // tags
  async addTag(collection: TaggedCollection, id: string, tag: string): Promise<void> {
    await this.#s.request("network", "PUT", `/v2.0/${collection}/${id}/tags/${encodeURIComponent(tag)}`, {
      retry: true,
    });
  }
  async setTags(collection: TaggedCollection, id: string, tags: string[]): Promise<string[]> {
    return (
      await this.#s.request<{ tags: string[] }>("network", "PUT", `/v2.0/${collection}/${id}/tags`, {
        body: { tags },
        retry: true,
      })
    ).body.tags;
  }
  async deleteTag(collection: "ports" | "routers" | "networks", id: string, tag: string): Promise<void> {
    await this.#s.request("network", "DELETE", `/v2.0/${collection}/${id}/tags/${encodeURIComponent(tag)}`, {
      retry: true,
    });
  }

  async listSecurityGroups(f: Filters = {}): Promise<SecurityGroup[]> {
    return (
      await this.#s.request<{ security_groups: SecurityGroup[] }>("network", "GET", `/v2.0/security-groups${query(f)}`)
    ).body.security_groups;
  }

  // routers
  async getRouter(id: string): Promise<Router> {
    return (await this.#s.request<{ router: Router }>("network", "GET", `/v2.0/routers/${id}`)).body.router;
  }
  async listRouters(f: Filters = {}): Promise<Router[]> {
    return (await this.#s.request<{ routers: Router[] }>("network", "GET", `/v2.0/routers${query(f)}`)).body.routers;
  }
  async createRouter(body: Record<string, unknown>): Promise<Router> {
    return (await this.#s.request<{ router: Router }>("network", "POST", "/v2.0/routers", { body: { router: body } }))
      .body.router;
  }
  async deleteRouter(id: string): Promise<void> {
    await this.#s.request("network", "DELETE", `/v2.0/routers/${id}`, { retry: true });
  }
  async setRoutes(id: string, routes: RouterRoute[], revision?: number): Promise<Router> {
    return (
      await this.#s.request<{ router: Router }>("network", "PUT", `/v2.0/routers/${id}`, {
        body: { router: { routes } },
        headers: ifMatch(revision),
      })
    ).body.router;
  }
  async updateRouter(id: string, body: Record<string, unknown>): Promise<Router> {
    return (
      await this.#s.request<{ router: Router }>("network", "PUT", `/v2.0/routers/${id}`, { body: { router: body } })
    ).body.router;
  }
  async addExtraRoutes(id: string, routes: RouterRoute[]): Promise<Router> {
    return (
      await this.#s.request<{ router: Router }>("network", "PUT", `/v2.0/routers/${id}/add_extraroutes`, {
        body: { router: { routes } },
        retry: true,
      })
    ).body.router;
  }
  async removeExtraRoutes(id: string, routes: RouterRoute[]): Promise<Router> {
    return (
      await this.#s.request<{ router: Router }>("network", "PUT", `/v2.0/routers/${id}/remove_extraroutes`, {
        body: { router: { routes } },
        retry: true,
      })
    ).body.router;
  }
  async addRouterInterface(id: string, subnetId: string): Promise<{ port_id: string; subnet_id: string }> {
    return (
      await this.#s.request<{ port_id: string; subnet_id: string }>(
        "network",
        "PUT",
        `/v2.0/routers/${id}/add_router_interface`,
        { body: { subnet_id: subnetId } },
      )
    ).body;
  }
  async removeRouterInterface(id: string, subnetId: string): Promise<void> {
    await this.#s.request("network", "PUT", `/v2.0/routers/${id}/remove_router_interface`, {
      body: { subnet_id: subnetId },
    });
  }

  // floating IPs
  async createFloatingIp(body: Record<string, unknown>): Promise<FloatingIp> {
    return (
      await this.#s.request<{ floatingip: FloatingIp }>("network", "POST", "/v2.0/floatingips", {
        body: { floatingip: body },
      })
    ).body.floatingip;
  }
  /** Update a floating IP; with `revision`, only if no one changed it since (If-Match, 412 otherwise). */
  async updateFloatingIp(id: string, body: Record<string, unknown>, revision?: number): Promise<FloatingIp> {
    return (
      await this.#s.request<{ floatingip: FloatingIp }>("network", "PUT", `/v2.0/floatingips/${id}`, {
        body: { floatingip: body },
        headers: ifMatch(revision),
      })
    ).body.floatingip;
  }
  async getFloatingIp(id: string): Promise<FloatingIp> {
    return (await this.#s.request<{ floatingip: FloatingIp }>("network", "GET", `/v2.0/floatingips/${id}`)).body
      .floatingip;
  }
  async listFloatingIps(f: Filters = {}): Promise<FloatingIp[]> {
    return (await this.#s.request<{ floatingips: FloatingIp[] }>("network", "GET", `/v2.0/floatingips${query(f)}`)).body
      .floatingips;
  }
  async deleteFloatingIp(id: string): Promise<void> {
    await this.#s.request("network", "DELETE", `/v2.0/floatingips/${id}`, { retry: true });
  }
}
