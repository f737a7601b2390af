// The metadata service: this VM's Nova server UUID from /openstack/latest/meta_data.json.
import type { HttpFetch } from "./http.js";

export const METADATA_URL = "http://169.254.169.254";

/** The `uuid` field, or undefined when the service does not answer (quickly) or has none. */
export async function instanceUuidFromMetadata(
  fetch: HttpFetch,
  baseUrl = METADATA_URL,
  timeoutMs = 2000,
): Promise<string | undefined> {
  try {
    const res = await fetch(
      {
        method: "GET",
        url: `${baseUrl.replace(/\/+$/, "")}/openstack/latest/meta_data.json`,
        headers: { accept: "application/json" },
      },
      { timeoutMs },
    );
    if (res.status !== 200) return undefined;
    const uuid = (JSON.parse(res.body) as { uuid?: unknown }).uuid;
    return typeof uuid === "string" && uuid !== "" ? uuid : undefined;
  } catch {
    return undefined;
  }
}
