// The node table's shared peer sets: a chain names a list of peer addresses by a set named after its
// content, so every local pod whose policies name the same peers shares one set, and a new pod's
// chains usually name sets that exist already (its ADD writes a few rules, not the addresses). A set
// goes in the transaction that drops its last user. Pure bookkeeping: the caller applies the scripts.
import { createHash } from "node:crypto";
import type { SetNamer } from "./nft.js";

const T = "inet tcnp_policy";

// A list's set name, once per list (the renderer hands the same arrays again while the selection lasts).
const names = new WeakMap<readonly string[], string>();

/** Whether a set of the node's table is one of these (the names this module gives). */
export const isSharedSet = (name: string): boolean => /^[ab][0-9a-f]{15}$/.test(name);

interface SetDef {
  family: "ip" | "ip6";
  ips: readonly string[];
}

export class SharedSets {
  /** The sets in the kernel, by name. */
  readonly #kernel = new Map<string, SetDef>();
  /** The sets each user's chains name, as applied. */
  readonly #byUser = new Map<string, Set<string>>();

  /** A namer for one user's next chains, and what it named. */
  namer(): { named: SetNamer; wanted: Map<string, SetDef> } {
    const wanted = new Map<string, SetDef>();
    const named: SetNamer = (family, ips) => {
      let name = names.get(ips);
      if (name === undefined)
        names.set(
          ips,
          (name = `${family === "ip" ? "a" : "b"}${createHash("sha1").update(ips.join(",")).digest("hex").slice(0, 15)}`),
        );
      if (!wanted.has(name)) wanted.set(name, { family, ips });
      return `@${name}`;
    };
    return { named, wanted };
  }

  /**
   * The script around a user's chains: `before` creates the sets it names that the kernel lacks,
   * `after` deletes the sets nobody names once its chains are replaced. `commit` once applied.
   */
  plan(
    user: string,
    wanted: ReadonlyMap<string, SetDef>,
  ): { before: string; after: string; gone: string[]; commit: () => void } {
    const before: string[] = [];
    for (const [name, d] of wanted) {
      if (this.#kernel.has(name)) continue;
      before.push(`add set ${T} ${name} { type ${d.family === "ip" ? "ipv4_addr" : "ipv6_addr"}; }`);
      before.push(`add element ${T} ${name} { ${d.ips.join(", ")} }`);
    }
    const others = new Set<string>();
    for (const [u, names] of this.#byUser) if (u !== user) for (const n of names) others.add(n);
    const gone = [...(this.#byUser.get(user) ?? [])].filter((n) => !wanted.has(n) && !others.has(n));
    const after = gone.map((n) => `delete set ${T} ${n}`);
    return {
      before: before.length === 0 ? "" : before.join("\n") + "\n",
      after: after.length === 0 ? "" : after.join("\n") + "\n",
      gone,
      commit: () => {
        for (const [name, d] of wanted) this.#kernel.set(name, d);
        for (const n of gone) this.#kernel.delete(n);
        if (wanted.size === 0) this.#byUser.delete(user);
        else this.#byUser.set(user, new Set(wanted.keys()));
      },
    };
  }

  /** Whether the kernel holds this set as far as this bookkeeping knows. */
  known(name: string): boolean {
    return this.#kernel.has(name);
  }
}
