// Keystone v3 in the emulator: password and application-credential auth, the catalog, token
// validation and revocation, and the few identity APIs tests use to create identities.
import { randomBytes, randomUUID } from "node:crypto";
import type { Emulator } from "./emulator.js";
import {
  ApiError,
  empty,
  json,
  keystoneError,
  nowIso,
  route,
  UNAUTHORIZED_MSG,
  type Ctx,
  type Route,
} from "./http-kit.js";
import type { TokenRec, UserRec } from "./world.js";

type J = Record<string, unknown>;
const obj = (v: unknown): J | undefined =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as J) : undefined;

const BAD_REQUEST_TAIL =
  " The server could not comply with the request since it is either malformed or otherwise incorrect. The client is assumed to be in error.";
const expecting = (attr: string, target: string): ApiError =>
  new ApiError(400, "ValidationError", `Expecting to find ${attr} in ${target}.${BAD_REQUEST_TAIL}`);
const unauthorized = (): ApiError => new ApiError(401, "Unauthorized", UNAUTHORIZED_MSG);

export function validToken(em: Emulator, id: string | undefined): TokenRec | undefined {
  if (id === undefined) return undefined;
  const t = em.world.tokens[id];
  if (t === undefined || t.revoked === true || t.expires_at <= em.now()) return undefined;
  return t;
}

function findDomain(em: Emulator, ref: J | undefined): string | undefined {
  if (ref === undefined) return undefined;
  if (typeof ref["id"] === "string") return em.world.domains.find((d) => d.id === ref["id"])?.id;
  // MariaDB-backed Keystone compares names case-insensitively.
  if (typeof ref["name"] === "string")
    return em.world.domains.find((d) => d.name.toLowerCase() === String(ref["name"]).toLowerCase())?.id;
  return undefined;
}

function findUser(em: Emulator, u: J): UserRec {
  if (typeof u["id"] === "string") {
    const user = em.world.users.find((x) => x.id === u["id"]);
    if (user === undefined) throw unauthorized();
    return user;
  }
  if (typeof u["name"] !== "string") throw expecting("id or name", "user");
  const d = obj(u["domain"]);
  if (d === undefined) throw expecting("domain", "user");
  const domainId = findDomain(em, d);
  const user = em.world.users.find((x) => x.name === u["name"] && x.domain_id === domainId);
  if (user === undefined || !user.enabled) throw unauthorized();
  return user;
}

function catalog(base: string): J[] {
  const ep = (url: string): J[] =>
    ["public", "internal", "admin"].map((i) => ({
      id: randomUUID().replace(/-/g, ""),
      interface: i,
      region: "RegionOne",
      region_id: "RegionOne",
      url,
    }));
  return [
    { type: "identity", name: "keystone", id: "identity", endpoints: ep(`${base}/v3/`) },
    { type: "network", name: "neutron", id: "network", endpoints: ep(`${base}/network`) },
    { type: "compute", name: "nova", id: "compute", endpoints: ep(`${base}/compute/v2.1`) },
  ];
}

function issue(em: Emulator, c: Ctx): ReturnType<typeof json> {
  const auth = obj(obj(c.body)?.["auth"]);
  const identity = obj(auth?.["identity"]);
  if (auth === undefined || identity === undefined) throw expecting("identity", "auth");
  const methods = identity["methods"];
  if (!Array.isArray(methods) || methods.length === 0) throw expecting("methods", "identity");
  let userId: string;
  let projectId: string;
  let roles: string[];
  let appCredId: string | undefined;
  if (methods[0] === "application_credential") {
    const ac = obj(identity["application_credential"]);
    if (ac === undefined) throw expecting("application_credential", "identity");
    if (auth["scope"] !== undefined) throw unauthorized();
    let cred = typeof ac["id"] === "string" ? em.world.appCreds.find((a) => a.id === ac["id"]) : undefined;
    if (cred === undefined && typeof ac["name"] === "string") {
      const u = findUser(em, obj(ac["user"]) ?? {});
      cred = em.world.appCreds.find((a) => a.name === ac["name"] && a.user_id === u.id);
    }
    if (cred === undefined || ac["secret"] !== cred.secret) throw unauthorized();
    userId = cred.user_id;
    projectId = cred.project_id;
    roles = cred.roles;
    appCredId = cred.id;
  } else if (methods[0] === "password") {
    const u = obj(obj(identity["password"])?.["user"]);
    if (u === undefined) throw expecting("user", "password");
    const user = findUser(em, u);
    if (u["password"] !== user.password) throw unauthorized();
    userId = user.id;
    const scope = obj(obj(auth["scope"])?.["project"]);
    if (scope === undefined) throw unauthorized();
    let project;
    if (typeof scope["id"] === "string") project = em.world.projects.find((p) => p.id === scope["id"]);
    else {
      if (typeof scope["name"] !== "string") throw expecting("id or name", "project");
      const d = obj(scope["domain"]);
      if (d === undefined) throw expecting("domain", "project");
      const domainId = findDomain(em, d);
      project = em.world.projects.find((p) => p.name === scope["name"] && p.domain_id === domainId);
    }
    if (project === undefined) throw unauthorized();
    projectId = project.id;
    roles = em.world.assignments.filter((a) => a.user_id === userId && a.project_id === projectId).map((a) => a.role);
    if (roles.length === 0) throw unauthorized();
  } else {
    throw new ApiError(401, "Unauthorized", UNAUTHORIZED_MSG);
  }
  const now = em.now();
  const tok: TokenRec = {
    id: `gAAAAA${randomBytes(48).toString("base64url")}`,
    user_id: userId,
    project_id: projectId,
    roles,
    methods: [String(methods[0])],
    issued_at: now,
    expires_at: now + em.config.tokenTtlSeconds * 1000,
  };
  if (appCredId !== undefined) tok.app_cred_id = appCredId;
  em.world.tokens[tok.id] = tok;
  return json(201, { token: tokenBody(em, tok, c) }, { "x-subject-token": tok.id });
}

function tokenBody(em: Emulator, t: TokenRec, c: Ctx): J {
  const user = em.world.users.find((u) => u.id === t.user_id);
  const project = em.world.projects.find((p) => p.id === t.project_id);
  const dom = (id: string | undefined): J => ({
    id: id ?? "default",
    name: em.world.domains.find((d) => d.id === id)?.name ?? "Default",
  });
  const body: J = {
    methods: t.methods,
    audit_ids: [randomBytes(16).toString("base64url")],
    expires_at: nowIso(t.expires_at),
    issued_at: nowIso(t.issued_at),
    is_domain: false,
    user: { id: t.user_id, name: user?.name ?? "", domain: dom(user?.domain_id), password_expires_at: null },
    project: { id: t.project_id, name: project?.name ?? "", domain: dom(project?.domain_id) },
    roles: t.roles.map((r) => ({ id: r, name: r })),
    catalog: catalog(em.baseUrl(c.req)),
  };
  if (t.app_cred_id !== undefined)
    body["application_credential"] = {
      id: t.app_cred_id,
      name: em.world.appCreds.find((a) => a.id === t.app_cred_id)?.name,
      restricted: true,
    };
  return body;
}

function caller(em: Emulator, c: Ctx): TokenRec {
  const t = validToken(em, c.req.headers["x-auth-token"]);
  if (t === undefined) throw unauthorized();
  return t;
}

export function keystoneRoutes(em: Emulator): Route[] {
  const version = (c: Ctx): J => ({
    id: "v3.14",
    status: "stable",
    updated: "2020-04-07T00:00:00Z",
    links: [{ rel: "self", href: `${em.baseUrl(c.req)}/v3/` }],
    "media-types": [{ base: "application/json", type: "application/vnd.openstack.identity-v3+json" }],
  });
  return [
    route("GET", "/v3", (c) => json(200, { version: version(c) })),
    route("POST", "/v3/auth/tokens", (c) => issue(em, c)),
    route("GET", "/v3/auth/tokens", (c) => {
      caller(em, c);
      const subject = validToken(em, c.req.headers["x-subject-token"]);
      if (subject === undefined)
        return keystoneError(404, `Could not find token: ${c.req.headers["x-subject-token"] ?? ""}.`);
      return json(200, { token: tokenBody(em, subject, c) });
    }),
    route("DELETE", "/v3/auth/tokens", (c) => {
      caller(em, c);
      const subject = validToken(em, c.req.headers["x-subject-token"]);
      if (subject === undefined)
        return keystoneError(404, `Could not find token: ${c.req.headers["x-subject-token"] ?? ""}.`);
      subject.revoked = true;
      return empty(204);
    }),
    route("GET", "/v3/users", (c) => {
      caller(em, c);
      const name = c.query.get("name");
      return json(200, {
        users: em.world.users
          .filter((u) => name === null || u.name === name)
          .map((u) => ({ id: u.id, name: u.name, domain_id: u.domain_id, enabled: u.enabled })),
      });
    }),
    route("POST", "/v3/users/:id/application_credentials", (c) => {
      const t = caller(em, c);
      const userId = c.params[0]!;
      if (userId !== t.user_id)
        throw new ApiError(
          403,
          "Forbidden",
          "You are not authorized to perform the requested action: identity:create_application_credential.",
        );
      const ac = obj(obj(c.body)?.["application_credential"]);
      if (ac === undefined || typeof ac["name"] !== "string") throw expecting("name", "application_credential");
      if (em.world.appCreds.some((a) => a.user_id === userId && a.name === ac["name"])) {
        throw new ApiError(
          409,
          "Conflict",
          "Conflict occurred attempting to store application_credential - Duplicate entry.",
        );
      }
      const secret = typeof ac["secret"] === "string" ? ac["secret"] : randomBytes(32).toString("base64url");
      const rec = {
        id: randomUUID().replace(/-/g, ""),
        name: ac["name"],
        user_id: userId,
        project_id: t.project_id,
        secret,
        roles: t.roles,
      };
      em.world.appCreds.push(rec);
      return json(201, {
        application_credential: {
          id: rec.id,
          name: rec.name,
          project_id: rec.project_id,
          secret,
          roles: rec.roles.map((r) => ({ id: r, name: r })),
          unrestricted: false,
          expires_at: null,
        },
      });
    }),
    route("DELETE", "/v3/users/:id/application_credentials/:cred", (c) => {
      caller(em, c);
      const i = em.world.appCreds.findIndex((a) => a.id === c.params[1] && a.user_id === c.params[0]);
      if (i < 0) throw new ApiError(404, "Not Found", `Could not find application credential: ${c.params[1]}.`);
      em.world.appCreds.splice(i, 1);
      return empty(204);
    }),
  ];
}
