// The edge's error mapping: what the adapters raise (kernel, OpenStack, locks) becomes a CNI error
// with the code a runtime acts on. The one place that knows both sides.
import { CniCode, CniError, toCniError as protocolError } from "../cni/errors.js";
import { isKernelError } from "../kernel/types.js";
import { CloudConfigError, OpenStackError } from "../openstack/errors.js";
import { NetworkError } from "../openstack/http.js";
import { LockError } from "../state/lock.js";

/** The CNI code for a failed OpenStack call: Neutron's error type first, then the HTTP status. */
export function openStackCode(e: OpenStackError): number {
  if (e.type === "IpAddressGenerationFailure") return CniCode.AddressExhausted;
  if (e.type === "OverQuota" || e.type === "RoutesExhausted" || e.type === "PortLimitExceeded")
    return CniCode.QuotaExceeded;
  if (e.status === 401 || e.status === 404) return CniCode.InvalidConfig;
  if (e.status === 403) return CniCode.PermissionDenied;
  if (e.status === 409 || e.status === 412 || e.status === 429 || e.status >= 500) return CniCode.TryAgainLater;
  return CniCode.CloudRejected;
}

function codeOf(e: unknown): number | undefined {
  if (isKernelError(e)) return e.errno === "ENOENT_NETNS" ? CniCode.UnknownContainer : CniCode.KernelFailure;
  if (e instanceof OpenStackError) return openStackCode(e);
  if (e instanceof NetworkError) return CniCode.TryAgainLater;
  if (e instanceof CloudConfigError) return CniCode.InvalidConfig;
  if (e instanceof LockError) return e.kind === "busy" ? CniCode.TryAgainLater : CniCode.IoFailure;
  return undefined;
}

/** Map anything a plugin threw to the CNI error the runtime gets. A CniError passes through. */
export function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  const code = codeOf(e);
  return code === undefined ? protocolError(e) : new CniError(code, (e as Error).message, { cause: e });
}
