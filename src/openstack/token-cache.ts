// Keystone tokens shared between plugin processes: one root-only file per credential set, refreshed
// under a lock before expiry, so a burst of pod starts authenticates once, not once per pod.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { AuthConfig, Token } from "./keystone.js";

export interface TokenStore {
  get(key: string): Token | undefined;
  put(key: string, token: Token): void;
  drop(key: string): void;
}

/** The cache key: which cloud, which identity, which scope. Never the secret itself. */
export function tokenKey(c: AuthConfig): string {
  const ident = [
    c.authUrl,
    c.userId ?? c.username ?? "",
    c.userDomainId ?? c.userDomainName ?? "",
    c.projectId ?? c.projectName ?? "",
    c.projectDomainId ?? c.projectDomainName ?? "",
    c.applicationCredentialId ?? c.applicationCredentialName ?? "",
    // A changed password must not reuse a token got with the old one, so mix in a digest of it.
    createHash("sha256")
      .update(c.password ?? c.applicationCredentialSecret ?? "")
      .digest("hex")
      .slice(0, 16),
  ].join("\n");
  return createHash("sha256").update(ident).digest("hex").slice(0, 32);
}

export class FileTokenStore implements TokenStore {
  readonly #dir: string;
  constructor(dir: string) {
    this.#dir = dir;
  }
  #file(key: string): string {
    return path.join(this.#dir, `${key}.json`);
  }
  get(key: string): Token | undefined {
    try {
      const t = JSON.parse(fs.readFileSync(this.#file(key), "utf8")) as Token;
      return typeof t.id === "string" && typeof t.expiresAt === "number" ? t : undefined;
    } catch {
      return undefined;
    }
  }
  put(key: string, token: Token): void {
    fs.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.#file(key)}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(token), { mode: 0o600 });
    fs.renameSync(tmp, this.#file(key));
  }
  drop(key: string): void {
    fs.rmSync(this.#file(key), { force: true });
  }
}

export class MemoryTokenStore implements TokenStore {
  readonly tokens = new Map<string, Token>();
  get(key: string): Token | undefined {
    return this.tokens.get(key);
  }
  put(key: string, token: Token): void {
    this.tokens.set(key, token);
  }
  drop(key: string): void {
    this.tokens.delete(key);
  }
}
