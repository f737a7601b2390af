// nftables through the `nft` command (Debian's nftables package): a script is one transaction, applied
// whole or not at all. In the process's own namespace, or in a pod's (by its netns path, with nsenter).
import { execFile } from "node:child_process";
import { HOST, KernelError, type Netns } from "./types.js";

export type NftRunner = (script: string, netns: Netns) => Promise<void>;
export type NftLister = (netns: Netns) => Promise<unknown>;

function run(args: readonly string[], netns: Netns, input?: string): Promise<string> {
  const [cmd, argv] = netns === HOST ? ["nft", args] : ["nsenter", [`--net=${netns}`, "--", "nft", ...args]];
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, argv as string[], { timeout: 10_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err === null) return resolve(stdout);
      const code = (err as NodeJS.ErrnoException).code;
      const detail = String(stderr).trim().split("\n").slice(0, 3).join("; ") || err.message;
      reject(
        new KernelError(`apply nftables rules (${args[0]})`, netns, code === "ENOENT" ? "ENOENT" : "EINVAL", {
          detail,
          cause: err,
        }),
      );
    });
    // nft may exit before it reads its input (a listing, a bad script): that is its answer, not a crash.
    child.stdin?.on("error", () => {});
    child.stdin?.end(input ?? "");
  });
}

/** Runs a script (`nft -f -`): one atomic transaction. */
export const nftApply: NftRunner = async (script, netns) => {
  await run(["-f", "-"], netns, script);
};

/** A table as nft's JSON (`nft -j list table`), or undefined when it does not exist. */
export async function nftListTable(family: string, table: string, netns: Netns): Promise<unknown> {
  try {
    return JSON.parse(await run(["-j", "list", "table", family, table], netns)) as unknown;
  } catch (e) {
    if (e instanceof KernelError && /No such file|does not exist/i.test(e.message)) return undefined;
    throw e;
  }
}
