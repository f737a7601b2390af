// `tcnp lab up|down|status|doctor` and the small echo server the lab runs in pods.
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { parseArgs } from "node:util";
import type { Kernel } from "../kernel/types.js";
import { labDown, labStatus } from "../lab/down.js";
import { run } from "../lab/proc.js";
import { restartAgents, vmEnv } from "../lab/agents.js";
import { DEFAULT_LAB_DIR, readLab, writeLab } from "../lab/state.js";
import { labUp, type LabOptions } from "../lab/up.js";
import { realClients, runAgent } from "../lab/real.js";
import { fileSink } from "../log/file-sink.js";
import { createLogger } from "../log/logger.js";
import type { Io } from "../base/io.js";

export const LAB_USAGE = `usage:
  tcnp lab up [--vms N] [--dir DIR]   build a whole small cloud on this machine (root) and show it working
      [--cloud NAME [--clouds-yaml FILE] --image ID --flavor ID]
                                      against a real OpenStack (a clouds.yaml entry) instead of the
                                      embedded one: the lab makes its networks, router and servers there
  tcnp lab status [--dir DIR] [--json]
                                      what is up (exit 0 while a lab is up): pods, processes, each
                                      VM's agent (socket, metrics, pools) and how to reach it by hand
  tcnp lab doctor POD [--json]        run tcnp doctor on a lab pod (e.g. vm1-mix-a)
  tcnp lab agent-restart [VM ...] [--dir DIR]
                                      start again the VMs' node agents that are not running (or those named)
  tcnp lab down [--dir DIR]           remove every namespace, link, process and file of the lab
`;

export interface LabCliDeps {
  kernel: () => Promise<Kernel>;
  self: string[];
  selfFile: string;
}

function cnicallerPath(env: Io["env"], selfFile: string): string {
  const cands = [
    env["TCNP_CNICALLER"],
    path.join(path.dirname(selfFile), "cnicaller"),
    path.join(path.dirname(selfFile), "..", "build", "bin", "cnicaller"),
  ];
  for (const c of cands) if (c !== undefined && fs.existsSync(c)) return c;
  throw new Error(
    `Cannot find the CNI caller (cnicaller): build it with scripts/build-cnicaller.sh, or set TCNP_CNICALLER`,
  );
}

function echoServer(port: number, text: string): Promise<number> {
  // A probe that connects and resets (nc -z) must not end the server.
  const srv = net.createServer((s) => {
    s.on("error", () => {});
    s.end(`${text}\n`);
  });
  srv.listen(port, "0.0.0.0");
  return new Promise(() => {});
}

export async function labCli(argv: string[], io: Io, deps: LabCliDeps): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "help" || sub === "--help" || rest.includes("--help")) return (io.out(LAB_USAGE), 0);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      dir: { type: "string" },
      vms: { type: "string" },
      json: { type: "boolean" },
      port: { type: "string" },
      text: { type: "string" },
      cloud: { type: "string" },
      "clouds-yaml": { type: "string" },
      image: { type: "string" },
      flavor: { type: "string" },
    },
  });
  const dir = values.dir ?? DEFAULT_LAB_DIR;
  if (values.json === true && sub !== "status" && sub !== "doctor") {
    io.err(`tcnp lab ${sub ?? ""}: --json is for status and doctor\n${LAB_USAGE}`);
    return 2;
  }
  switch (sub) {
    case "up": {
      if (process.getuid?.() !== 0) {
        io.err("tcnp lab up needs root (it creates network namespaces)\n");
        return 2;
      }
      const vms = Number(values.vms ?? "2");
      if (!Number.isInteger(vms) || vms < 2 || vms > 8) {
        io.err("--vms must be from 2 to 8\n");
        return 2;
      }
      let cloud: LabOptions["cloud"];
      if (values.cloud !== undefined) {
        if (values.image === undefined || values.flavor === undefined) {
          io.err("--cloud needs --image ID and --flavor ID (the lab boots its VMs' servers there)\n");
          return 2;
        }
        // The plugins run with the runtime's small environment: give them the file itself.
        const home = io.env["HOME"];
        const candidates =
          values["clouds-yaml"] !== undefined
            ? [values["clouds-yaml"]]
            : io.env["OS_CLIENT_CONFIG_FILE"] !== undefined
              ? [io.env["OS_CLIENT_CONFIG_FILE"]]
              : [
                  "clouds.yaml",
                  ...(home === undefined ? [] : [path.join(home, ".config/openstack/clouds.yaml")]),
                  "/etc/openstack/clouds.yaml",
                ];
        const cloudsYaml = candidates.find((f) => fs.existsSync(f));
        if (cloudsYaml === undefined) {
          io.err(
            `--cloud ${values.cloud}: no clouds.yaml found (looked in ${candidates.join(", ")}); give --clouds-yaml FILE\n`,
          );
          return 2;
        }
        cloud = {
          name: values.cloud,
          image: values.image,
          flavor: values.flavor,
          cloudsYaml: path.resolve(cloudsYaml),
        };
        try {
          realClients(cloud, io.env);
        } catch (e) {
          io.err(`--cloud ${values.cloud}: ${(e as Error).message.replace(/^--cloud\.cloud "[^"]*" /, "")}\n`);
          return 2;
        }
      }
      return labUp({
        dir,
        vms,
        io,
        kernel: await deps.kernel(),
        self: deps.self,
        selfFile: deps.selfFile,
        cnicaller: cnicallerPath(io.env, deps.selfFile),
        ...(cloud === undefined ? {} : { cloud }),
      });
    }
    case "down":
      return labDown({ dir, io, kernel: await deps.kernel(), cnicaller: cnicallerPath(io.env, deps.selfFile) });
    case "status":
      return labStatus({ dir, io, kernel: await deps.kernel(), json: values.json === true });
    case "agent-restart": {
      const s = readLab(dir);
      if (s === undefined) {
        io.err(`no lab is recorded in ${dir}\n`);
        return 2;
      }
      const unknown = positionals.filter((n) => !s.vms.some((v) => v.name === n));
      if (unknown.length > 0) {
        io.err(`no lab VM ${unknown.join(", ")}; VMs: ${s.vms.map((v) => v.name).join(", ")}\n`);
        return 2;
      }
      const done = await restartAgents(s, positionals, deps.self);
      writeLab(s);
      io.out(done.length === 0 ? "every node agent is running\n" : `${done.join("\n")}\n`);
      return 0;
    }
    case "doctor": {
      const s = readLab(dir);
      const pod = s?.pods.find((p) => p.podName === positionals[0]);
      if (s === undefined || pod === undefined) {
        io.err(
          `no lab pod "${positionals[0] ?? ""}"${s === undefined ? " (no lab is up)" : `; pods: ${s.pods.map((p) => p.podName).join(", ")}`}\n`,
        );
        return 2;
      }
      const vm = s.vms.find((v) => v.name === pod.vm)!;
      const r = await run(
        [
          "ip",
          "netns",
          "exec",
          vm.ns,
          ...deps.self,
          "doctor",
          "--pod",
          `default/${pod.podName}`,
          ...(values.json === true ? ["--json"] : []),
        ],
        // the VM's records, runtime cache and node agent (the doctor shows the agent's view too)
        { env: vmEnv(s, vm) },
      );
      io.out(r.stdout);
      io.err(r.stderr);
      return r.code;
    }
    case "agent": {
      // Started by "lab up --cloud"; runs until "lab down" stops it.
      const s = readLab(dir);
      if (s?.cloud === undefined) {
        io.err(`no lab on a real cloud is recorded in ${dir}\n`);
        return 2;
      }
      const log = createLogger(fileSink(path.join(dir, "agent.log"))).child({ program: "tcnp-lab-agent" });
      const kernel = await deps.kernel();
      return runAgent(s, kernel, io.env, log, () =>
        fs.writeFileSync(path.join(dir, "agent.ready"), `${process.pid}\n`),
      );
    }
    case "echo-server":
      return echoServer(Number(values.port ?? "8080"), values.text ?? "ok");
    default:
      io.err(LAB_USAGE);
      return 2;
  }
}
