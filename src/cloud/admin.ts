// The emulator's own admin API under /_tcnp: faults, configuration, token expiry, state and stats,
// so a running `tcnp cloud` can be steered by tests and the lab.
import type { Emulator, EmulatorConfig, FaultRule } from "./emulator.js";
import { ApiError, empty, json, route, type Route } from "./http-kit.js";
import { obj } from "./neutron-kit.js";

const KINDS = new Set(["latency", "error", "drop", "drop-after-commit", "stale-revision", "no-nic"]);

/** The world without secrets (passwords, credential secrets, token ids). */
export function publicState(em: Emulator): unknown {
  const w = em.world;
  return {
    ...w,
    users: w.users.map((u) => ({ ...u, password: "[redacted]" })),
    appCreds: w.appCreds.map((a) => ({ ...a, secret: "[redacted]" })),
    tokens: Object.keys(w.tokens).length,
  };
}

export function adminRoutes(em: Emulator): Route[] {
  return [
    route("GET", "/faults", () => json(200, { faults: em.faults })),
    route("POST", "/faults", (c) => {
      const f = obj(c.body) as FaultRule | undefined;
      if (f === undefined || !KINDS.has(String(f.kind)))
        throw new ApiError(400, "BadRequest", `"kind" must be one of ${[...KINDS].join(", ")}`);
      return json(201, { fault: em.addFault(f) });
    }),
    route("DELETE", "/faults", () => {
      em.clearFaults();
      return empty(204);
    }),
    route("DELETE", "/faults/:id", (c) => {
      em.faults = em.faults.filter((f) => f.id !== c.params[0]);
      return empty(204);
    }),
    route("GET", "/config", () => json(200, { config: em.config })),
    route("PATCH", "/config", (c) => {
      const patch = obj(c.body) as Partial<EmulatorConfig> | undefined;
      if (patch === undefined) throw new ApiError(400, "BadRequest", "body must be an object");
      for (const k of Object.keys(patch))
        if (!(k in em.config)) throw new ApiError(400, "BadRequest", `unknown setting "${k}"`);
      em.config = { ...em.config, ...patch };
      return json(200, { config: em.config });
    }),
    route("POST", "/tokens/expire", () => {
      em.expireTokens();
      return empty(204);
    }),
    route("POST", "/settle", async () => {
      await em.settle();
      return empty(204);
    }),
    route("GET", "/state", () => json(200, publicState(em))),
    route("GET", "/stats", () => json(200, em.stats)),
  ];
}
