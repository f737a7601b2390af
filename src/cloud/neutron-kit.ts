// Helpers every emulated Neutron resource module shares: ownership, visibility, revisions, If-Match,
// query filters, the default security group.
import { randomUUID } from "node:crypto";
import type { SecurityGroup } from "../openstack/types.js";
import type { Emulator } from "./emulator.js";
import { ApiError, nowNeutron, type Ctx } from "./http-kit.js";
import type { TokenRec } from "./world.js";

export type J = Record<string, unknown>;
export const obj = (v: unknown): J | undefined =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as J) : undefined;

export const isAdmin = (t: TokenRec): boolean => t.roles.includes("admin");

export function token(em: Emulator, c: Ctx): TokenRec {
  const t = em.tokenOf(c.req);
  if (t === undefined) throw new ApiError(401, "Unauthorized", "The request you have made requires authentication.");
  return t;
}

export const notFound = (kind: string, id: string, period = true): ApiError =>
  new ApiError(404, `${kind}NotFound`, `${kind} ${id} could not be found${period ? "." : ""}`);

/** A resource the caller may see: admin sees all; others their project's (and shared networks). */
export function visible(t: TokenRec, r: { project_id?: string; shared?: boolean }): boolean {
  return isAdmin(t) || r.project_id === t.project_id || r.shared === true;
}

/** The request body's `<resource>` object, or the webob 400 Neutron answers without it. */
export function bodyOf(c: Ctx, resource: string): J {
  const b = obj(obj(c.body)?.[resource]);
  if (b === undefined) throw new ApiError(400, "HTTPBadRequest", "Resource body required");
  return b;
}

/** Bump a resource's revision and update time after a change. */
export function touch(em: Emulator, r: { revision_number: number; updated_at?: string }): void {
  r.revision_number++;
  r.updated_at = nowNeutron(em.now());
}

/** Check `If-Match: revision_number=N` against a resource (412 / 400 like Neutron). */
export function checkIfMatch(
  em: Emulator,
  c: Ctx,
  r: { revision_number: number },
  target: { id: string },
  collection: string,
): void {
  const h = c.req.headers["if-match"];
  if (h === undefined) return;
  const etags = h
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.startsWith("revision_number="));
  if (etags.length === 0) return;
  if (etags.length > 1)
    throw new ApiError(
      400,
      "BadRequest",
      "Bad if-match request: Revision number etag must be in the format of revision_number=<int>.",
    );
  const n = Number(etags[0]!.slice("revision_number=".length));
  if (!Number.isInteger(n))
    throw new ApiError(
      400,
      "BadRequest",
      "Bad if-match request: Revision number etag must be in the format of revision_number=<int>.",
    );
  // A 412 storm: another writer changed the resource just before us.
  if (em.takeFault("network", c.req.method, c.path, ["stale-revision"]) !== undefined) touch(em, r);
  if (n !== r.revision_number) {
    throw new ApiError(
      412,
      "RevisionNumberConstraintFailed",
      `Constrained to ${n}, but current revision is ${r.revision_number}`,
    );
  }
  void target;
  void collection;
}

/** Neutron's list filters: attribute equality (repeated keys OR), tags, fixed_ips. */
export function filtered<T extends object>(
  items: T[],
  q: URLSearchParams,
  special: Record<string, (item: T, values: string[]) => boolean> = {},
): T[] {
  const keys = [...new Set([...q.keys()])].filter(
    (k) => !["fields", "limit", "marker", "page_reverse", "sort_key", "sort_dir"].includes(k),
  );
  return items.filter((item) =>
    keys.every((k) => {
      const values = q.getAll(k);
      const sp = special[k];
      if (sp !== undefined) return sp(item, values);
      const tags = (item as { tags?: string[] }).tags ?? [];
      if (k === "tags") return values.flatMap((v) => v.split(",")).every((t) => tags.includes(t));
      if (k === "tags-any") return values.flatMap((v) => v.split(",")).some((t) => tags.includes(t));
      if (k === "not-tags") return !values.flatMap((v) => v.split(",")).every((t) => tags.includes(t));
      if (k === "not-tags-any") return !values.flatMap((v) => v.split(",")).some((t) => tags.includes(t));
      const v = (item as J)[k];
      if (v === undefined) return false;
      return values.some((x) => String(v) === x);
    }),
  );
}

export function defaultSecurityGroup(em: Emulator, projectId: string): SecurityGroup {
  const existing = Object.values(em.world.securityGroups).find(
    (g) => g.name === "default" && g.project_id === projectId,
  );
  if (existing !== undefined) return existing;
  const sg: SecurityGroup = { id: randomUUID(), name: "default", project_id: projectId };
  em.world.securityGroups[sg.id] = sg;
  return sg;
}
