// Nova v2.1: servers and os-interface (attach is synchronous, detach is a 202 cast).
import type { OpenStackSession } from "./session.js";
import type { InterfaceAttachment, Server } from "./types.js";

export class Nova {
  readonly #s: OpenStackSession;
  constructor(session: OpenStackSession) {
    this.#s = session;
  }
  async getServer(id: string): Promise<Server> {
    return (await this.#s.request<{ server: Server }>("compute", "GET", `/servers/${id}`)).body.server;
  }
  /** Every server's ID the credentials see (GET /servers, all pages): a cheap existence check. */
  async listServerIds(): Promise<Set<string>> {
    const ids = new Set<string>();
    let path = "/servers?limit=1000";
    for (let page = 0; page < 1000; page++) {
      const body = (
        await this.#s.request<{ servers: Array<{ id: string }>; servers_links?: Array<{ rel: string; href: string }> }>(
          "compute",
          "GET",
          path,
        )
      ).body;
      for (const s of body.servers) ids.add(s.id);
      const last = body.servers.at(-1);
      if (body.servers_links?.some((l) => l.rel === "next") !== true || last === undefined) break;
      path = `/servers?limit=1000&marker=${encodeURIComponent(last.id)}`;
    }
    return ids;
  }
  async listServers(): Promise<Server[]> {
    return (await this.#s.request<{ servers: Server[] }>("compute", "GET", "/servers/detail")).body.servers;
  }
  async createServer(body: Record<string, unknown>): Promise<Server> {
    return (
      await this.#s.request<{ server: Server }>("compute", "POST", "/servers", {
        body: { server: body },
        expect: [202],
      })
    ).body.server;
  }
  async deleteServer(id: string): Promise<void> {
    await this.#s.request("compute", "DELETE", `/servers/${id}`, { expect: [204], retry: true });
  }
  async attachInterface(serverId: string, portId: string): Promise<InterfaceAttachment> {
    return (
      await this.#s.request<{ interfaceAttachment: InterfaceAttachment }>(
        "compute",
        "POST",
        `/servers/${serverId}/os-interface`,
        { body: { interfaceAttachment: { port_id: portId } }, expect: [200] },
      )
    ).body.interfaceAttachment;
  }
  async listInterfaces(serverId: string): Promise<InterfaceAttachment[]> {
    return (
      await this.#s.request<{ interfaceAttachments: InterfaceAttachment[] }>(
        "compute",
        "GET",
        `/servers/${serverId}/os-interface`,
      )
    ).body.interfaceAttachments;
  }
  async detachInterface(serverId: string, portId: string): Promise<void> {
    await this.#s.request("compute", "DELETE", `/servers/${serverId}/os-interface/${portId}`, {
      expect: [202],
      retry: true,
    });
  }
}
