// One place that assembles a session and the service clients from their dependencies.
import type { Logger } from "../log/logger.js";
import type { Clock } from "../base/clock.js";
import type { Lock } from "../state/lock.js";
import { MemoryLock } from "../state/lock.js";
import type { HttpFetch } from "./http.js";
import type { AuthConfig } from "./keystone.js";
import { Neutron } from "./neutron.js";
import { Nova } from "./nova.js";
import { OpenStackSession, type SessionOptions } from "./session.js";
import { MemoryTokenStore, type TokenStore } from "./token-cache.js";

export interface Clients {
  session: OpenStackSession;
  neutron: Neutron;
  nova: Nova;
}

export interface ClientDeps {
  auth: AuthConfig;
  fetch: HttpFetch;
  clock: Clock;
  tokens?: TokenStore;
  lock?: Lock;
  log?: Logger;
  timeoutMs?: number;
  endpoints?: SessionOptions["endpoints"];
  retries?: number;
}

export function createClients(d: ClientDeps): Clients {
  const o: SessionOptions = {
    auth: d.auth,
    fetch: d.fetch,
    clock: d.clock,
    tokens: d.tokens ?? new MemoryTokenStore(),
    lock: d.lock ?? new MemoryLock(),
  };
  if (d.log !== undefined) o.log = d.log;
  if (d.timeoutMs !== undefined) o.timeoutMs = d.timeoutMs;
  if (d.endpoints !== undefined) o.endpoints = d.endpoints;
  if (d.retries !== undefined) o.retries = d.retries;
  const session = new OpenStackSession(o);
  return { session, neutron: new Neutron(session), nova: new Nova(session) };
}
