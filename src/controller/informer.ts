// A cache of one kind of Kubernetes object: list, then watch from the list's resourceVersion; a watch
// that ends resumes from the last version seen; an expired version (410 Gone) starts over with a
// fresh list. The way client-go's reflector keeps a store, in a few lines.
import type * as http from "node:http";
import type { Logger } from "../log/logger.js";
import { getStream, type KubeAccess } from "./kube.js";

interface Meta {
  metadata?: { uid?: string; namespace?: string; name?: string; resourceVersion?: string };
  code?: number;
}

export interface Informer<T> {
  /** Resolves once the first list is in the cache. */
  synced: Promise<void>;
  isSynced(): boolean;
  items(): T[];
  get(key: string): T | undefined;
  stop(): void;
}

const keyOf = (m: Meta): string => `${m.metadata?.namespace ?? ""}/${m.metadata?.name ?? ""}`;

/**
 * Keeps `parse(object)` of every object at `path` (a collection, e.g. /api/v1/pods), keyed by
 * "namespace/name", and calls `changed` after every change (a list, or an event that altered it).
 */
export function inform<T>(
  access: KubeAccess,
  path: string,
  parse: (o: unknown) => T,
  changed: (why: string) => void,
  log: Logger,
  opts: { retryMs?: number } = {},
): Informer<T> {
  const cache = new Map<string, T>();
  let version = "";
  let stopped = false;
  let synced = false;
  let req: http.ClientRequest | undefined;
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;
  let markSynced: () => void = () => {};
  const syncedP = new Promise<void>((r) => (markSynced = r));
  const sep = path.includes("?") ? "&" : "?";

  const later = (fn: () => void): void => {
    req = undefined;
    if (stopped || timer !== undefined) return;
    const delay = Math.min(30_000, (opts.retryMs ?? 500) * 2 ** Math.min(failures++, 6));
    timer = setTimeout(() => {
      timer = undefined;
      fn();
    }, delay);
  };
  const list = (): void => {
    if (stopped) return;
    let body = "";
    req = getStream(access, path, (res) => {
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => {
        if (res.statusCode !== 200) {
          log.warn(`cannot list ${path}`, { status: res.statusCode });
          return later(list);
        }
        const r = JSON.parse(body) as { items?: unknown[]; metadata?: { resourceVersion?: string } };
        cache.clear();
        for (const o of r.items ?? []) cache.set(keyOf(o as Meta), parse(o));
        version = r.metadata?.resourceVersion ?? "";
        failures = 0;
        synced = true;
        markSynced();
        changed(`listed ${path}`);
        watch();
      });
    });
    req.on("error", (e) => {
      if (!stopped) log.warn(`cannot list ${path}`, { error: e });
      later(list);
    });
  };
  const watch = (): void => {
    if (stopped) return;
    let buf = "";
    let gone = false;
    req = getStream(access, `${path}${sep}watch=1&allowWatchBookmarks=true&resourceVersion=${version}`, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        gone = true; // expired (410) or refused: list again, after a pause
        return;
      }
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        buf += d;
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          let ev: { type?: string; object?: Meta };
          try {
            ev = JSON.parse(line) as typeof ev;
          } catch {
            continue;
          }
          const o = ev.object;
          if (o === undefined) continue;
          if (ev.type === "ERROR") {
            gone = o.code === 410;
            req?.destroy();
            return;
          }
          version = o.metadata?.resourceVersion ?? version;
          if (ev.type === "BOOKMARK") continue;
          const key = keyOf(o);
          if (ev.type === "DELETED") cache.delete(key);
          else cache.set(key, parse(o));
          changed(`${ev.type?.toLowerCase() ?? "event"} ${path} ${key}`);
        }
      });
    });
    const again = (): void => {
      if (req === undefined) return;
      req = undefined;
      if (stopped) return;
      if (gone) {
        log.info(`watch of ${path} expired; listing again`, {});
        return later(list);
      }
      // A watch that ends normally (the server's timeout) resumes at once from the last version.
      setImmediate(watch);
    };
    req.on("error", (e) => {
      if (!stopped) log.warn(`watch of ${path} failed`, { error: e });
      gone = true;
      req = undefined;
      later(list);
    });
    req.on("close", again);
  };
  list();
  return {
    synced: syncedP,
    isSynced: () => synced,
    items: () => [...cache.values()],
    get: (k) => cache.get(k),
    stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      req?.destroy();
    },
  };
}
