// CNI error codes and the typed error that carries them. Every failure that reaches a runtime is
// mapped exactly once, at the edge (plugins/errors.ts through skel), so the mapping lives in one place.

export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  PluginNotAvailableLimited: 51,
  // Plugin-specific codes (≥ 100).
  AddressExhausted: 100,
  QuotaExceeded: 101,
  CloudRejected: 102,
  PermissionDenied: 103,
  AllocationMissing: 104,
  KernelFailure: 110,
  DeviceNotFound: 111,
  CheckFailed: 112,
  Internal: 999,
} as const;
export type CniCodeValue = (typeof CniCode)[keyof typeof CniCode];

const DEFAULT_MSG: Record<number, string> = {
  1: "Incompatible CNI version",
  2: "Unsupported field",
  3: "Container unknown or does not exist",
  4: "Invalid environment variables",
  5: "I/O failure",
  6: "Failed to decode content",
  7: "Invalid network config",
  11: "Try again later",
  50: "Plugin not available",
  51: "Plugin not available, existing containers may have limited connectivity",
  100: "No addresses available",
  101: "Quota exceeded",
  102: "Cloud rejected the request",
  103: "Permission denied by the cloud",
  104: "Allocation missing",
  110: "Kernel operation failed",
  111: "Device not found",
  112: "Network state differs from what was set up",
  999: "Internal error",
};

/** A failure with a CNI error code. `msg` is the short class of error, `details` the specific cause. */
export class CniError extends Error {
  readonly code: number;
  readonly details: string;
  constructor(code: number, details: string, options?: { cause?: unknown; msg?: string }) {
    super(details, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "CniError";
    this.code = code;
    this.details = details;
    this.msgText = options?.msg ?? DEFAULT_MSG[code] ?? "Plugin error";
  }
  readonly msgText: string;
  toJSON(cniVersion?: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    if (cniVersion !== undefined) out["cniVersion"] = cniVersion;
    out["code"] = this.code;
    out["msg"] = this.msgText;
    out["details"] = this.details;
    return out;
  }
}

export const invalidConfig = (details: string, cause?: unknown): CniError =>
  new CniError(CniCode.InvalidConfig, details, { cause });
export const invalidEnv = (details: string): CniError => new CniError(CniCode.InvalidEnv, details);
export const decodeFailure = (details: string, cause?: unknown): CniError =>
  new CniError(CniCode.DecodeFailure, details, { cause });
export const incompatibleVersion = (details: string): CniError => new CniError(CniCode.IncompatibleVersion, details);
export const tryAgainLater = (details: string, cause?: unknown): CniError =>
  new CniError(CniCode.TryAgainLater, details, { cause });

/**
 * The protocol's own mapping: a CniError passes through, anything else is an internal error. The
 * edge that knows the adapters' error types (plugins/errors.ts) maps those first.
 */
export function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  if (e instanceof Error) return new CniError(CniCode.Internal, e.message, { cause: e });
  return new CniError(CniCode.Internal, String(e));
}
