// Where OpenStack credentials come from, in layers: OS_* environment variables, then a clouds.yaml
// entry (`cloud`, or OS_CLOUD), then the plugin configuration's own `openstackConf` keys. Errors name
// the offending field and never quote a secret.
import * as fs from "node:fs";
import * as path from "node:path";
import { CloudConfigError } from "./errors.js";
import { redactUrl } from "./http.js";

const invalidConfig = (message: string, cause?: unknown): CloudConfigError => new CloudConfigError(message, { cause });
import { parseYaml, type Yaml } from "../util/yaml.js";
import type { AuthConfig, EndpointInterface } from "./keystone.js";

export interface Credentials {
  auth: AuthConfig;
  caCert?: string;
  insecure?: boolean;
}

type Layer = Partial<AuthConfig> & { caCert?: string; insecure?: boolean };
type J = Record<string, unknown>;
const isObj = (v: unknown): v is J => typeof v === "object" && v !== null && !Array.isArray(v);

export interface CredentialSources {
  env: Readonly<Record<string, string | undefined>>;
  readFile(file: string): string;
  exists(file: string): boolean;
}

export const fileSources = (env: Readonly<Record<string, string | undefined>>): CredentialSources => ({
  env,
  readFile: (f) => fs.readFileSync(f, "utf8"),
  exists: (f) => fs.existsSync(f),
});

const INTERFACES = new Set(["public", "internal", "admin"]);
const normaliseInterface = (v: string): string => v.replace(/URL$/, "");

/** The "default" domain is an id (keystone-manage bootstrap creates id "default", name "Default"). */
function domainLayer(which: "user" | "project", v: string): Layer {
  if (v === "default") return which === "user" ? { userDomainId: "default" } : { projectDomainId: "default" };
  return which === "user" ? { userDomainName: v } : { projectDomainName: v };
}

function set<K extends keyof Layer>(l: Layer, k: K, v: Layer[K] | undefined): void {
  if (v !== undefined && v !== "") l[k] = v;
}

function envLayer(env: CredentialSources["env"]): Layer {
  const l: Layer = {};
  set(l, "authUrl", env["OS_AUTH_URL"]);
  set(l, "username", env["OS_USERNAME"]);
  set(l, "userId", env["OS_USER_ID"]);
  set(l, "password", env["OS_PASSWORD"]);
  set(l, "projectName", env["OS_PROJECT_NAME"] ?? env["OS_TENANT_NAME"]);
  set(l, "projectId", env["OS_PROJECT_ID"] ?? env["OS_TENANT_ID"]);
  set(l, "userDomainName", env["OS_USER_DOMAIN_NAME"]);
  set(l, "userDomainId", env["OS_USER_DOMAIN_ID"]);
  set(l, "projectDomainName", env["OS_PROJECT_DOMAIN_NAME"]);
  set(l, "projectDomainId", env["OS_PROJECT_DOMAIN_ID"]);
  set(l, "applicationCredentialId", env["OS_APPLICATION_CREDENTIAL_ID"]);
  set(l, "applicationCredentialName", env["OS_APPLICATION_CREDENTIAL_NAME"]);
  set(l, "applicationCredentialSecret", env["OS_APPLICATION_CREDENTIAL_SECRET"]);
  set(l, "region", env["OS_REGION_NAME"]);
  if (env["OS_INTERFACE"] !== undefined) l.interface = normaliseInterface(env["OS_INTERFACE"]) as EndpointInterface;
  set(l, "caCert", env["OS_CACERT"]);
  if (env["OS_INSECURE"] === "true" || env["OS_INSECURE"] === "1") l.insecure = true;
  return l;
}

function cloudsYamlFiles(src: CredentialSources, explicit: string | undefined): string[] {
  if (explicit !== undefined) return [explicit];
  const fromEnv = src.env["OS_CLIENT_CONFIG_FILE"];
  if (fromEnv !== undefined) return [fromEnv];
  const home = src.env["HOME"];
  return [
    "clouds.yaml",
    ...(home === undefined ? [] : [path.join(home, ".config/openstack/clouds.yaml")]),
    "/etc/openstack/clouds.yaml",
  ];
}

function cloudLayer(src: CredentialSources, name: string, file: string | undefined, field: string): Layer {
  const files = cloudsYamlFiles(src, file);
  const found = files.find((f) => src.exists(f));
  if (found === undefined)
    throw invalidConfig(`${field} "${name}": no clouds.yaml found (looked in ${files.join(", ")})`);
  let doc: Yaml;
  try {
    doc = parseYaml(src.readFile(found));
  } catch (e) {
    throw invalidConfig(`Cannot read clouds.yaml "${found}": ${(e as Error).message}`, e);
  }
  const clouds = isObj(doc) ? doc["clouds"] : undefined;
  const c = isObj(clouds) ? clouds[name] : undefined;
  if (!isObj(c)) throw invalidConfig(`${field} "${name}" is not a cloud in "${found}"`);
  const a = isObj(c["auth"]) ? c["auth"] : {};
  const s = (v: unknown): string | undefined =>
    typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined;
  const l: Layer = {};
  set(l, "authUrl", s(a["auth_url"]));
  set(l, "username", s(a["username"]));
  set(l, "userId", s(a["user_id"]));
  set(l, "password", s(a["password"]));
  set(l, "projectName", s(a["project_name"] ?? a["tenant_name"]));
  set(l, "projectId", s(a["project_id"] ?? a["tenant_id"]));
  set(l, "userDomainName", s(a["user_domain_name"] ?? a["domain_name"]));
  set(l, "userDomainId", s(a["user_domain_id"] ?? a["domain_id"]));
  set(l, "projectDomainName", s(a["project_domain_name"] ?? a["domain_name"]));
  set(l, "projectDomainId", s(a["project_domain_id"] ?? a["domain_id"]));
  set(l, "applicationCredentialId", s(a["application_credential_id"]));
  set(l, "applicationCredentialName", s(a["application_credential_name"]));
  set(l, "applicationCredentialSecret", s(a["application_credential_secret"]));
  set(l, "region", s(c["region_name"]));
  if (typeof c["interface"] === "string") l.interface = normaliseInterface(c["interface"]) as EndpointInterface;
  set(l, "caCert", s(c["cacert"]));
  if (c["verify"] === false) l.insecure = true;
  return l;
}

function configLayer(src: CredentialSources, o: J, field: string): Layer {
  const l: Layer = {};
  const str = (k: string): string | undefined => {
    const v = o[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw invalidConfig(`${field}.${k} must be a string`);
    return v;
  };
  const file = (k: string): string | undefined => {
    const f = str(k);
    if (f === undefined) return undefined;
    try {
      return src.readFile(f).replace(/\r?\n$/, "");
    } catch (e) {
      throw invalidConfig(
        `Cannot read ${field}.${k} "${f}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        e,
      );
    }
  };
  set(l, "authUrl", str("authUrl"));
  set(l, "username", str("username"));
  set(l, "userId", str("userId"));
  set(l, "password", str("password") ?? file("passwordFile"));
  set(l, "projectName", str("project") ?? str("projectName"));
  set(l, "projectId", str("projectId"));
  const domain = str("domain");
  if (domain !== undefined) Object.assign(l, domainLayer("user", domain), domainLayer("project", domain));
  const ud = str("userDomain");
  if (ud !== undefined) Object.assign(l, domainLayer("user", ud));
  const pd = str("projectDomain");
  if (pd !== undefined) Object.assign(l, domainLayer("project", pd));
  set(l, "applicationCredentialId", str("applicationCredentialId"));
  set(l, "applicationCredentialName", str("applicationCredentialName"));
  set(l, "applicationCredentialSecret", str("applicationCredentialSecret") ?? file("applicationCredentialSecretFile"));
  set(l, "region", str("region"));
  const iface = str("interface");
  if (iface !== undefined) l.interface = normaliseInterface(iface) as EndpointInterface;
  set(l, "caCert", str("caCert"));
  const insecure = o["insecure"];
  if (insecure !== undefined) {
    if (typeof insecure !== "boolean") throw invalidConfig(`${field}.insecure must be true or false`);
    l.insecure = insecure;
  }
  return l;
}

/** Resolve credentials from `openstackConf` (may be undefined), clouds.yaml and OS_* variables. */
export function resolveCredentials(conf: unknown, src: CredentialSources, field = "ipam.openstackConf"): Credentials {
  if (conf !== undefined && !isObj(conf)) throw invalidConfig(`${field} must be an object`);
  const o = conf ?? {};
  const cloud = typeof o["cloud"] === "string" ? o["cloud"] : src.env["OS_CLOUD"];
  const cloudsFile = typeof o["cloudsYaml"] === "string" ? o["cloudsYaml"] : undefined;
  const merged: Layer = {
    ...envLayer(src.env),
    ...(cloud === undefined
      ? {}
      : cloudLayer(src, cloud, cloudsFile, typeof o["cloud"] === "string" ? `${field}.cloud` : "OS_CLOUD")),
    ...configLayer(src, o, field),
  };
  if (merged.authUrl === undefined)
    throw invalidConfig(`${field}.authUrl is required (or a clouds.yaml "cloud", or OS_AUTH_URL)`);
  if (!/^https?:\/\/[^/]+/.test(merged.authUrl) && !merged.authUrl.startsWith("http+unix://")) {
    // The URL may carry credentials (user:password@): never repeat those.
    throw invalidConfig(`${field}.authUrl "${redactUrl(merged.authUrl)}" is not an http(s) URL`);
  }
  const appCred = merged.applicationCredentialId !== undefined || merged.applicationCredentialName !== undefined;
  if (appCred) {
    if (merged.applicationCredentialSecret === undefined)
      throw invalidConfig(`${field}.applicationCredentialSecret is required with an application credential`);
    if (merged.applicationCredentialId === undefined && merged.username === undefined && merged.userId === undefined) {
      throw invalidConfig(`${field}.username is required with applicationCredentialName`);
    }
  } else {
    if (merged.username === undefined && merged.userId === undefined)
      throw invalidConfig(`${field}.username is required (or an application credential)`);
    if (merged.password === undefined)
      throw invalidConfig(`${field}.password is required (or passwordFile, or an application credential)`);
    if (merged.projectName === undefined && merged.projectId === undefined)
      throw invalidConfig(`${field}.project is required`);
    if (merged.userId === undefined && merged.userDomainId === undefined && merged.userDomainName === undefined) {
      throw invalidConfig(`${field}.domain is required (the user's domain)`);
    }
    if (
      merged.projectId === undefined &&
      merged.projectDomainId === undefined &&
      merged.projectDomainName === undefined
    ) {
      throw invalidConfig(`${field}.domain is required (the project's domain)`);
    }
  }
  const iface = merged.interface ?? "public";
  if (!INTERFACES.has(iface))
    throw invalidConfig(`${field}.interface must be "public", "internal" or "admin" (got "${iface}")`);
  const { caCert, insecure, ...auth } = merged;
  if (caCert !== undefined) {
    try {
      fs.accessSync(caCert, fs.constants.R_OK);
    } catch (e) {
      throw invalidConfig(
        `Cannot read ${field}.caCert "${caCert}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        e,
      );
    }
  }
  const out: Credentials = { auth: { ...(auth as AuthConfig), interface: iface } };
  if (caCert !== undefined) out.caCert = caCert;
  if (insecure !== undefined) out.insecure = insecure;
  return out;
}
