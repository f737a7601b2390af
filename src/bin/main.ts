// The one executable. It becomes the program it was invoked as (see cli/names.ts); everything a
// program needs is imported on demand, so a CNI VERSION call loads almost nothing.
import { invokedAs, isCniPlugin } from "../base/names.js";

async function main(): Promise<number> {
  const name = invokedAs(process.argv0, process.argv);
  if (isCniPlugin(name)) {
    const { cniProcess } = await import("./cni-process.js");
    // Everything a plugin writes (stdout to the runtime's pipe, its log file) is written
    // synchronously on Linux by now: leave without waiting for idle sockets and timers to wind down.
    process.exit(await cniProcess(name));
  }
  const { adminCli, runController } = await import("./admin.js");
  if (name === "vrouter-route-controller") return runController(process.argv.slice(2));
  return adminCli(process.argv.slice(2));
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`tcnp: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
