// Run a conflist through in-process plugins the way libcni does: ADD in order with prevResult
// chaining; CHECK in order and DEL in reverse, both with the final ADD result as prevResult; GC in
// order with the list's valid attachments.
import { runCni as runCniRaw, type CniOutcome, type CniPlugin, type CniIo } from "../../src/cni/skel.js";
import { toCniError } from "../../src/plugins/errors.js";

const runCni = (p: CniPlugin, io: CniIo): ReturnType<typeof runCniRaw> => runCniRaw(p, io, { toCniError });

export async function runChain(
  plugins: Record<string, CniPlugin>,
  list: Record<string, unknown>,
  env: Record<string, string>,
  prev?: unknown,
): Promise<CniOutcome & { result?: unknown }> {
  const confs = list["plugins"] as Array<Record<string, unknown>>;
  const cmd = env["CNI_COMMAND"];
  const order = cmd === "DEL" ? [...confs].reverse() : confs;
  let prevResult = cmd === "ADD" ? undefined : prev;
  let last: CniOutcome = { exitCode: 0, stdout: "", stderr: "" };
  for (const c of order) {
    const conf = {
      ...c,
      name: list["name"],
      cniVersion: list["cniVersion"],
      ...(prevResult === undefined ? {} : { prevResult }),
      // GC: libcni hands every plugin the list's valid attachments
      ...(cmd === "GC" ? { "cni.dev/valid-attachments": list["cni.dev/valid-attachments"] ?? [] } : {}),
    };
    const p = plugins[String(c["type"])];
    if (p === undefined) throw new Error(`no plugin ${String(c["type"])}`);
    last = await runCni(p, { env, stdin: JSON.stringify(conf) });
    if (last.exitCode !== 0) return last;
    if (cmd === "ADD") prevResult = JSON.parse(last.stdout);
  }
  return cmd === "ADD" ? { ...last, result: prevResult } : last;
}
