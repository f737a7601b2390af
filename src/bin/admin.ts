// The `tcnp` admin CLI: subcommands parse their own flags; each returns an exit code.
import * as fs from "node:fs";
import * as path from "node:path";
import * as sea from "node:sea";
import { parseArgs } from "node:util";
import { cloudCli } from "../cli/cloud.js";
import { install, installConf, installSecret } from "../install/install.js";
import type { Io } from "../base/io.js";
import type { Kernel } from "../kernel/types.js";
import { VERSION } from "../version.js";

const INSTALL_USAGE = `usage: tcnp install --bin-dir DIR [--secret FILE ... [--secret-dir DIR]] [--conf FILE ... [--conf-dir DIR]]

  --bin-dir     where the runtime looks for plugins (e.g. /opt/cni/bin): the executable and one link
                per plugin name go there (an existing host-device is kept as host-device.orig)
  --secret      a clouds.yaml to install into --secret-dir (default /etc/tcnp: 0700, the file 0600)
  --conf        a network configuration to install into --conf-dir (default /etc/cni/net.d, 0600),
                after the secrets: a runtime may use a configuration the moment it appears
`;

const USAGE = `usage: tcnp <command> [options]

commands:
  version                      print the version
  install --bin-dir DIR [--secret FILE ... --secret-dir DIR] [--conf FILE ... --conf-dir DIR]
                               install the executable and its plugin links into DIR (e.g. /opt/cni/bin),
                               secrets (a clouds.yaml) into --secret-dir (default /etc/tcnp, 0700, files 0600),
                               then network configurations into --conf-dir (default /etc/cni/net.d), mode 0600
  cloud ...                    the embedded OpenStack (tcnp cloud help)
  route-controller ...         the same as running vrouter-route-controller
  lab up|status|doctor|down    a whole small cloud on this machine (tcnp lab help)
  doctor --pod NS/NAME ...     diagnose a pod's network on this node (tcnp doctor --help)
  agent [status] ...           the node agent: warm pools, the plugins' requests (tcnp agent --help)
  gc [--dry-run] ...           release what pods that are gone still hold, for runtimes without CNI GC (tcnp gc --help)
`;

const io: Io = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t), env: process.env };

async function kernel(): Promise<Kernel> {
  const { NetlinkKernel } = await import("../kernel/netlink-kernel.js");
  return NetlinkKernel.create();
}

/** Keep a long-running command alive until SIGTERM/SIGINT, then run its stop and exit 0. */
function runUntilSignalled(stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
    stop().then(
      () => process.exit(0),
      (e: unknown) => {
        process.stderr.write(`tcnp: ${e instanceof Error ? e.message : String(e)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

/** How to run ourselves again: the executable, or node with the bundle. */
function selfCommand(): string[] {
  return sea.isSea() ? [process.execPath] : [process.execPath, process.argv[1] ?? ""];
}

function selfExecutable(): string {
  // Inside the single executable it is us; from the bundle, the executable built beside it.
  return sea.isSea() ? process.execPath : path.join(path.dirname(process.argv[1] ?? "."), "tcnp");
}

export async function runController(argv: string[]): Promise<number> {
  const { controllerCli } = await import("../controller/run.js");
  const code = await controllerCli(argv, io, runUntilSignalled);
  return code < 0 ? new Promise<number>(() => {}) : code;
}

export async function adminCli(argv: string[]): Promise<number> {
  // "tcnp lab status | head": a reader that goes away is not an error.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  const [cmd, ...rest] = argv;
  try {
    return await command(cmd, rest);
  } catch (e) {
    // A flag a subcommand does not know: its usage, not a stack.
    if ((e as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS") === true) {
      io.err(`tcnp ${cmd ?? ""}: ${(e as Error).message} (tcnp ${cmd ?? ""} --help)\n`);
      return 2;
    }
    throw e;
  }
}

async function command(cmd: string | undefined, rest: string[]): Promise<number> {
  switch (cmd) {
    case "version":
    case "--version":
      if (rest.includes("--help")) return (io.out("usage: tcnp version\n"), 0);
      process.stdout.write(`tcnp ${VERSION}\n`);
      return 0;
    case "install": {
      const { values } = parseArgs({
        args: rest,
        options: {
          "bin-dir": { type: "string" },
          conf: { type: "string", multiple: true },
          "conf-dir": { type: "string", default: "/etc/cni/net.d" },
          secret: { type: "string", multiple: true },
          "secret-dir": { type: "string", default: "/etc/tcnp" },
          help: { type: "boolean" },
        },
      });
      if (values.help === true) return (io.out(INSTALL_USAGE), 0);
      // Where the plugins go is never guessed: a bare install wrote over the node's /opt/cni/bin.
      if (values["bin-dir"] === undefined) return (io.err(`tcnp install: --bin-dir is required\n${INSTALL_USAGE}`), 2);
      const r = install({ source: selfExecutable(), binDir: values["bin-dir"] });
      process.stdout.write(
        `installed ${r.binary}\n${r.links.map((l) => `  ${l} -> ${fs.readlinkSync(l)}`).join("\n")}\n`,
      );
      for (const b of r.backedUp) process.stdout.write(`kept the previous file as ${b}\n`);
      // Secrets before configurations: a runtime may use a configuration the moment it appears.
      for (const source of values.secret ?? [])
        process.stdout.write(
          `installed ${installSecret({ source, dir: values["secret-dir"] ?? "/etc/tcnp" })} (mode 0600)\n`,
        );
      for (const source of values.conf ?? []) {
        const c = installConf({ source, confDir: values["conf-dir"] ?? "/etc/cni/net.d" });
        process.stdout.write(`installed ${c.file} (mode 0600)\n`);
        if (c.inlineSecrets.length > 0) {
          process.stderr.write(
            `tcnp install: ${c.file} holds a secret inline (${c.inlineSecrets.join(", ")}); prefer a root-only clouds.yaml ("cloud") or "passwordFile"\n`,
          );
        }
      }
      return 0;
    }
    case "route-controller":
      return runController(rest);
    case "lab": {
      const { labCli } = await import("../cli/lab.js");
      return labCli(rest, io, { kernel, self: selfCommand(), selfFile: selfExecutable() });
    }
    case "doctor": {
      const { doctorCli, DOCTOR_USAGE } = await import("../cli/doctor.js");
      if (rest.includes("--help")) {
        io.out(DOCTOR_USAGE);
        return 0;
      }
      return doctorCli(rest, io, kernel);
    }
    case "agent": {
      const { agentCli } = await import("./agent.js");
      const code = await agentCli(rest, io, runUntilSignalled);
      return code < 0 ? new Promise<number>(() => {}) : code;
    }
    case "gc": {
      const { gcCli } = await import("../cli/gc.js");
      return gcCli(rest, io, selfExecutable());
    }
    case "cloud": {
      const code = await cloudCli(rest, io, { kernel, onStop: runUntilSignalled });
      return code < 0 ? new Promise<number>(() => {}) : code;
    }
    case undefined:
    case "help":
    case "--help":
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`tcnp: unknown command "${cmd}"\n${USAGE}`);
      return 2;
  }
}
