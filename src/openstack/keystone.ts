// Keystone v3: password (project scope by name + domain) and application-credential
// authentication, and endpoint choice from the catalog by type / interface / region.
import { OpenStackError, parseErrorBody } from "./errors.js";
import { CloudConfigError } from "./errors.js";
import { jsonHeaders, type HttpFetch } from "./http.js";

export type EndpointInterface = "public" | "internal" | "admin";

export interface AuthConfig {
  authUrl: string;
  username?: string;
  userId?: string;
  password?: string;
  userDomainName?: string;
  userDomainId?: string;
  projectName?: string;
  projectId?: string;
  projectDomainName?: string;
  projectDomainId?: string;
  applicationCredentialId?: string;
  applicationCredentialName?: string;
  applicationCredentialSecret?: string;
  region?: string;
  interface: EndpointInterface;
}

export interface CatalogEndpoint {
  interface: string;
  region_id?: string;
  region?: string;
  url: string;
}
export interface CatalogEntry {
  type: string;
  name?: string;
  endpoints: CatalogEndpoint[];
}

export interface Token {
  id: string;
  /** Expiry, epoch milliseconds. */
  expiresAt: number;
  projectId: string;
  userId: string;
  /** Absent in tokens cached by an older tcnp. */
  roles?: string[];
  catalog: CatalogEntry[];
}

/** `<authUrl>/auth/tokens` for a versioned URL, `<authUrl>/v3/auth/tokens` otherwise. */
export function tokenUrl(authUrl: string): string {
  const base = authUrl.replace(/\/+$/, "");
  return /\/v3$/.test(base) ? `${base}/auth/tokens` : `${base}/v3/auth/tokens`;
}

const domainRef = (name: string | undefined, id: string | undefined): Record<string, string> | undefined =>
  id !== undefined ? { id } : name !== undefined ? { name } : undefined;

export function authBody(c: AuthConfig): Record<string, unknown> {
  if (c.applicationCredentialId !== undefined || c.applicationCredentialName !== undefined) {
    const cred: Record<string, unknown> = { secret: c.applicationCredentialSecret ?? "" };
    if (c.applicationCredentialId !== undefined) cred["id"] = c.applicationCredentialId;
    else {
      cred["name"] = c.applicationCredentialName;
      const user: Record<string, unknown> = c.userId !== undefined ? { id: c.userId } : { name: c.username };
      const d = domainRef(c.userDomainName, c.userDomainId);
      if (d !== undefined) user["domain"] = d;
      cred["user"] = user;
    }
    // An application credential carries its own scope; sending one is an error (research §1.4).
    return { auth: { identity: { methods: ["application_credential"], application_credential: cred } } };
  }
  const user: Record<string, unknown> = c.userId !== undefined ? { id: c.userId } : { name: c.username };
  const ud = domainRef(c.userDomainName, c.userDomainId);
  if (ud !== undefined && c.userId === undefined) user["domain"] = ud;
  user["password"] = c.password ?? "";
  const body: Record<string, unknown> = { auth: { identity: { methods: ["password"], password: { user } } } };
  if (c.projectId !== undefined) (body["auth"] as Record<string, unknown>)["scope"] = { project: { id: c.projectId } };
  else if (c.projectName !== undefined) {
    const project: Record<string, unknown> = { name: c.projectName };
    const pd = domainRef(c.projectDomainName, c.projectDomainId);
    if (pd !== undefined) project["domain"] = pd;
    (body["auth"] as Record<string, unknown>)["scope"] = { project };
  }
  return body;
}

/** POST /v3/auth/tokens. The password never appears in an error: Keystone's 401 text is generic. */
export async function authenticate(fetch: HttpFetch, c: AuthConfig, opts: { timeoutMs?: number } = {}): Promise<Token> {
  const url = tokenUrl(c.authUrl);
  const res = await fetch(
    { method: "POST", url, headers: jsonHeaders(), body: JSON.stringify(authBody(c)) },
    opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs },
  );
  const path = new URL(url).pathname;
  if (res.status !== 201 && res.status !== 200) {
    const { type, detail } = parseErrorBody(res.status, res.body);
    const f = { service: "identity" as const, method: "POST", path, status: res.status, type, detail };
    const rid = res.headers["x-openstack-request-id"];
    throw new OpenStackError(rid === undefined ? f : { ...f, requestId: rid });
  }
  const id = res.headers["x-subject-token"];
  let tok: Record<string, unknown>;
  try {
    tok = (JSON.parse(res.body) as { token: Record<string, unknown> }).token;
  } catch (e) {
    throw new OpenStackError(
      {
        service: "identity",
        method: "POST",
        path,
        status: res.status,
        type: "BadResponse",
        detail: "token response is not JSON",
      },
      { cause: e },
    );
  }
  if (id === undefined || tok === undefined) {
    throw new OpenStackError({
      service: "identity",
      method: "POST",
      path,
      status: res.status,
      type: "BadResponse",
      detail: "no X-Subject-Token in the response",
    });
  }
  return {
    id,
    expiresAt: Date.parse(String(tok["expires_at"])),
    projectId: String((tok["project"] as Record<string, unknown> | undefined)?.["id"] ?? ""),
    userId: String((tok["user"] as Record<string, unknown> | undefined)?.["id"] ?? ""),
    roles: ((tok["roles"] as Array<{ name?: unknown }> | undefined) ?? []).map((r) => String(r.name ?? "")),
    catalog: (tok["catalog"] as CatalogEntry[] | undefined) ?? [],
  };
}

/** The endpoint URL for a service type, by interface and (if given) region; no trailing slash. */
export function endpointFor(
  catalog: readonly CatalogEntry[],
  type: string,
  iface: EndpointInterface,
  region?: string,
): string {
  const entry = catalog.find((e) => e.type === type);
  const ep = entry?.endpoints.find(
    (e) => e.interface === iface && (region === undefined || e.region_id === region || e.region === region),
  );
  if (ep === undefined) {
    throw new CloudConfigError(
      `Cannot find a ${iface} "${type}" endpoint${region === undefined ? "" : ` in region "${region}"`} in the Keystone catalog`,
    );
  }
  return ep.url.replace(/\/+$/, "");
}
