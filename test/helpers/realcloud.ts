// The real Keystone + Neutron + Nova started by scripts/realcloud/setup.sh, as a test target.
import { nodeFetch } from "../../src/openstack/node-fetch.js";
import type { AuthConfig } from "../../src/openstack/keystone.js";
import type { HttpFetch } from "../../src/openstack/http.js";
import { skipUnlessRequired } from "./root.js";

export interface RealCloud {
  auth: AuthConfig;
  fetch: HttpFetch;
  image: string;
  flavor: string;
}

/** undefined when the real cloud's environment is present (scripts/realcloud/env.sh), else why not. */
export function realCloudSkipReason(): string | undefined {
  return process.env["TCNP_REAL_AUTH_URL"] !== undefined
    ? undefined
    : skipUnlessRequired(
        "no real cloud: run scripts/realcloud/setup.sh and source scripts/realcloud/env.sh (scripts/test.sh does)",
      );
}

export function realCloud(): RealCloud {
  const e = process.env;
  return {
    auth: {
      authUrl: e["TCNP_REAL_AUTH_URL"] ?? "",
      username: e["TCNP_REAL_USER"] ?? "admin",
      password: e["TCNP_REAL_PASSWORD"] ?? "",
      projectName: e["TCNP_REAL_PROJECT"] ?? "admin",
      userDomainName: e["TCNP_REAL_DOMAIN"] ?? "Default",
      projectDomainName: e["TCNP_REAL_DOMAIN"] ?? "Default",
      interface: "public",
    },
    fetch: nodeFetch({ timeoutMs: 120_000 }),
    image: e["TCNP_REAL_IMAGE"] ?? "",
    flavor: e["TCNP_REAL_FLAVOR"] ?? "",
  };
}
