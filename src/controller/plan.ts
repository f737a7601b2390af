// The routes to add and remove to move the router from what it holds to what is desired, within the
// route limit: routes still desired stay where they are (no flapping); new ones fill what room is
// left in a stable order (blocks and aggregates first, then by address); pods whose route does not
// fit are reported, never silently dropped. Pure.
import { parseCidr } from "../net/ip.js";
import type { RouterRoute } from "../openstack/types.js";
import type { DesiredRoute } from "./desired.js";
import { isOwned } from "./desired.js";

export interface RoutePlan {
  add: RouterRoute[];
  remove: RouterRoute[];
  /** Desired routes that do not fit under the limit, with the pods they would serve. */
  unfit: DesiredRoute[];
  /** Routes owned and installed after the plan. */
  installed: RouterRoute[];
  foreign: number;
}

const key = (r: RouterRoute): string => `${r.destination} ${r.nexthop}`;

// Wider prefixes first (they serve more pods), then by address: the same order every time.
function order(a: DesiredRoute, b: DesiredRoute): number {
  const pa = parseCidr(a.destination);
  const pb = parseCidr(b.destination);
  if (pa.prefix !== pb.prefix) return pa.prefix - pb.prefix;
  return pa.ip.value < pb.ip.value ? -1 : pa.ip.value > pb.ip.value ? 1 : a.nexthop < b.nexthop ? -1 : 1;
}

export function planRoutes(
  current: RouterRoute[],
  desired: DesiredRoute[],
  opts: { podCidrs: string[]; nodeCidrs: string[]; limit?: number },
): RoutePlan {
  const owned = current.filter((r) => isOwned(r, opts.podCidrs, opts.nodeCidrs));
  const foreign = current.length - owned.length;
  const want = new Map(desired.map((d) => [key(d), d]));
  const have = new Set(owned.map(key));
  const remove = owned.filter((r) => !want.has(key(r)));
  const keep = owned.filter((r) => want.has(key(r)));
  const room = opts.limit === undefined ? Infinity : Math.max(0, opts.limit - foreign - keep.length);
  const candidates = desired.filter((d) => !have.has(key(d))).sort(order);
  const add = candidates
    .slice(0, room === Infinity ? candidates.length : room)
    .map((d) => ({ destination: d.destination, nexthop: d.nexthop }));
  const unfit = room === Infinity ? [] : candidates.slice(room);
  return { add, remove, unfit, installed: [...keep, ...add], foreign };
}
