// A whole small cloud for root tests: the emulator in this process (served inside the topology's
// service namespace, with data-path hooks on the real kernel), the topology namespaces, and per-VM
// CNI sandboxes. Pods are added through cnicaller run inside the VM's namespace, as a kubelet would.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { kernelDataPath } from "../../src/cloud/datapath.js";
import { Emulator, type EmulatorConfig } from "../../src/cloud/emulator.js";
import { serve, type Served } from "../../src/cloud/serve.js";
import { applySeed, type Seed } from "../../src/cloud/seed.js";
import { NetlinkKernel } from "../../src/kernel/netlink-kernel.js";
import type { PoolView } from "../../src/ipam/pool/pool.js";
import { buildTopology, destroyTopology, type Topology, type TopoVm } from "../../src/lab/topology.js";
import { cnicallerBinary, distBinary, REFERENCE_CNI_DIR, type Run } from "./cni.js";
import { trackNetns } from "./namespaces.js";

export const MIX_NET = "b9535039-d935-4a33-a7cb-2cc1c58ab904";
export const ENI_NET = "73fe8ad8-eda8-4ee0-9d10-ffca11752362";
const MIX_SUBNET = "2a000000-0000-4000-8000-000000000001";
const ENI_SUBNET = "2a000000-0000-4000-8000-000000000002";
export const ROUTER = "3a000000-0000-4000-8000-000000000001";
/** A dedicated pod subnet on the mix network, not attached to the router (routes make it reachable). */
export const POD_SUBNET = "2a000000-0000-4000-8000-000000000003";
export const serverId = (i: number): string => `1a000000-0000-4000-8000-${String(i).padStart(12, "0")}`;

export interface WorldOptions {
  vms: number;
  /** Which network the VMs' eth0 is on. */
  home: "mix" | "eni";
  config?: Partial<EmulatorConfig>;
  /** Extra networks for the seed. */
  extraSeed?: Partial<Seed>;
  /** Add POD_SUBNET (10.10.30.0/24) to the mix network. */
  podSubnet?: boolean;
  /** The mix subnet's allocation pool (default 10.10.10.10–250); a small one makes Neutron reuse addresses soon. */
  mixPool?: { start: string; end: string };
}

export interface VmHandle {
  name: string;
  serverId: string;
  ns: string;
  nsName: string;
  ip: string;
  dir: string;
  confDir: string;
  stateDir: string;
  cacheDir: string;
}

export const execAsync = (argv: string[], env: Record<string, string>, input?: string): Promise<Run> =>
  new Promise((resolve) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      { env, encoding: "utf8", timeout: 180_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const r: Run = { status: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr };
        try {
          r.json = JSON.parse(stdout) as Record<string, unknown>;
        } catch {
          // not JSON
        }
        resolve(r);
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });

export class World {
  em!: Emulator;
  kernel!: NetlinkKernel;
  topo!: Topology;
  vms: VmHandle[] = [];
  binDir = "";
  dir = "";
  prefix = "";
  #served: Served[] = [];
  #pods = new Set<string>();
  #seq = 0;

  static async start(o: WorldOptions): Promise<World> {
    const w = new World();
    await w.#start(o);
    return w;
  }

  async #start(o: WorldOptions): Promise<void> {
    this.prefix = `tt${process.pid % 100000}${String.fromCharCode(97 + (Date.now() % 26))}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-world-"));
    this.binDir = path.join(this.dir, "bin");
    await execAsync([distBinary, "install", "--bin-dir", this.binDir], { PATH: process.env["PATH"] ?? "" });
    this.em = new Emulator({ config: { detachDelayMs: 100, ...o.config } });
    const home = o.home === "mix" ? "mix" : "eni";
    const seed: Seed = {
      networks: [
        {
          id: MIX_NET,
          name: "mix",
          mtu: 1450,
          subnets: [
            {
              id: MIX_SUBNET,
              name: "mix-v4",
              cidr: "10.10.10.0/24",
              allocation_pools: [o.mixPool ?? { start: "10.10.10.10", end: "10.10.10.250" }],
            },
            ...(o.podSubnet === true
              ? [{ id: POD_SUBNET, name: "mix-pods", cidr: "10.10.30.0/24", enable_dhcp: false }]
              : []),
          ],
        },
        {
          id: ENI_NET,
          name: "eni",
          mtu: 1450,
          subnets: [
            {
              id: ENI_SUBNET,
              name: "eni-v4",
              cidr: "10.10.20.0/24",
              allocation_pools: [{ start: "10.10.20.10", end: "10.10.20.250" }],
            },
          ],
        },
        ...(o.extraSeed?.networks ?? []),
      ],
      routers: [{ id: ROUTER, name: "r1", interfaces: ["mix-v4", "eni-v4"] }],
      servers: Array.from({ length: o.vms }, (_, i) => ({
        id: serverId(i + 1),
        name: `vm${i + 1}`,
        ports: [{ network: home, ip: `10.10.${home === "mix" ? 10 : 20}.${11 + i}` }],
      })),
    };
    applySeed(this.em, seed);
    this.kernel = await NetlinkKernel.create();
    const routerPorts = Object.values(this.em.world.ports).filter((p) => p.device_owner === "network:router_interface");
    const vms: TopoVm[] = Array.from({ length: o.vms }, (_, i) => {
      const port = Object.values(this.em.world.ports).find((p) => p.device_id === serverId(i + 1))!;
      return {
        name: `vm${i + 1}`,
        serverId: serverId(i + 1),
        defaultVia: "eth0",
        nics: [{ name: "eth0", network: port.network_id, mac: port.mac_address, ip: port.fixed_ips[0]!.ip_address }],
      };
    });
    for (const vm of vms) for (const ns of ["net", "rtr", "svc", "ext", vm.name]) trackNetns(`${this.prefix}-${ns}`);
    this.topo = await buildTopology(this.kernel, {
      prefix: this.prefix,
      networks: [MIX_NET, ENI_NET].map((id) => {
        const sub = Object.values(this.em.world.subnets).find((s) => s.network_id === id && s.id !== POD_SUBNET)!;
        return {
          id,
          cidr: sub.cidr,
          gateway: sub.gateway_ip!,
          mtu: 1450,
          routerMac: routerPorts.find((p) => p.network_id === id)!.mac_address,
        };
      }),
      vms,
      serviceCidr: "198.18.0.0/30",
      externalCidr: "203.0.113.0/24",
    });
    this.em.hooks = kernelDataPath(this.em, this.kernel, {
      networks: {
        [MIX_NET]: { netns: this.topo.ns.net, bridge: this.topo.bridge(MIX_NET) },
        [ENI_NET]: { netns: this.topo.ns.net, bridge: this.topo.bridge(ENI_NET) },
      },
      servers: Object.fromEntries(vms.map((v) => [v.serverId, { netns: this.topo.ns.vms[v.name]! }])),
      routers: { [ROUTER]: { netns: this.topo.ns.router } },
    });
    this.#served.push(
      await serve(this.em, [`${this.topo.serviceIp}:5000`, "169.254.169.254:80"], { netns: this.topo.ns.svc }),
    );
    this.vms = vms.map((v) => {
      const dir = path.join(this.dir, v.name);
      const h: VmHandle = {
        name: v.name,
        serverId: v.serverId,
        ns: this.topo.ns.vms[v.name]!,
        nsName: `${this.prefix}-${v.name}`,
        ip: v.nics[0]!.ip,
        dir,
        confDir: path.join(dir, "net.d"),
        stateDir: path.join(dir, "state"),
        cacheDir: path.join(dir, "cache"),
      };
      for (const d of [h.confDir, h.stateDir, h.cacheDir]) fs.mkdirSync(d, { recursive: true });
      return h;
    });
  }

  get authUrl(): string {
    return `http://${this.topo.serviceIp}:5000/v3`;
  }

  /** The seed's mix configuration, exactly as written but for authUrl. */
  mixConf(over: Record<string, unknown> = {}, ipamOver: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      name: "cni0",
      cniVersion: "0.3.1",
      type: "veth-route",
      ipam: {
        type: "tcnp-ipam",
        openstackConf: {
          username: "admin",
          password: "secret",
          project: "admin",
          domain: "default",
          authUrl: this.authUrl,
        },
        neutronConf: { networks: [MIX_NET], mode: "mix" },
        routes: [{ dst: "0.0.0.0/0" }],
        // Addresses go back to Neutron at DEL, as the tests of other behaviours expect; the
        // cool-down (default 30 s) has tests of its own that set it.
        coolDownSeconds: 0,
        ...ipamOver,
      },
      ...over,
    };
  }

  /** The seed's eni conflist, exactly as written but for authUrl and a cool-down of 0. */
  eniConf(over: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      name: "cni0",
      cniVersion: "0.3.1",
      plugins: [
        {
          type: "host-device",
          ipam: {
            type: "tcnp-ipam",
            openstackConf: {
              username: "admin",
              password: "secret",
              project: "admin",
              domain: "default",
              authUrl: this.authUrl,
            },
            neutronConf: { networks: [ENI_NET], mode: "eni" },
            routes: [{ dst: "0.0.0.0/0" }],
            // Ports are deleted at DEL, as the tests of other behaviours expect; the cool-down
            // (default 30 s) has tests of its own that set it.
            coolDownSeconds: 0,
          },
        },
        {
          type: "veth-host",
          serviceCidr: "10.96.0.0/12",
          hostInterface: "eth0",
          containerInterface: "veth0",
          ipMasq: true,
        },
      ],
      ...over,
    };
  }

  install(vm: VmHandle, file: string, conf: unknown): void {
    for (const f of fs.readdirSync(vm.confDir)) fs.rmSync(path.join(vm.confDir, f));
    fs.writeFileSync(path.join(vm.confDir, file), JSON.stringify(conf, null, 2));
  }

  env(vm: VmHandle, extra: Record<string, string> = {}): Record<string, string> {
    return {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      NETCONFPATH: vm.confDir,
      CNI_PATH: `${this.binDir}:${REFERENCE_CNI_DIR}`,
      CNI_CACHEDIR: vm.cacheDir,
      TCNP_STATE_DIR: vm.stateDir,
      // One lock per VM (a node): the VMs of one test are separate nodes.
      TCNP_LOCK_DIR: path.join(vm.dir, "locks"),
      TCNP_AGENT_SOCKET: path.join(vm.dir, "agent", "agent.sock"),
      TCNP_LOG_FILE: path.join(vm.dir, "tcnp.log"),
      TCNP_LOG_LEVEL: "debug",
      ...extra,
    };
  }

  /** A fresh pod namespace (as a runtime creates it). */
  async newPod(tag = "p"): Promise<{ name: string; path: string; id: string }> {
    const seq = ++this.#seq;
    const name = `${this.prefix}-${tag}${seq}`;
    trackNetns(name);
    const p = await this.kernel.createNetns(name);
    await this.kernel.setLink(p, "lo", { up: true });
    this.#pods.add(name);
    return { name, path: p, id: `c${process.pid}x${String(seq).padStart(5, "0")}` };
  }

  async removePodNetns(name: string): Promise<void> {
    await this.kernel.deleteNetns(name);
    this.#pods.delete(name);
  }

  cni(
    vm: VmHandle,
    verb: string,
    pod: { path: string; id: string },
    opts: { net?: string; env?: Record<string, string> } = {},
  ): Promise<Run> {
    return execAsync(
      ["ip", "netns", "exec", vm.nsName, cnicallerBinary, verb, opts.net ?? "cni0", pod.path, pod.id],
      this.env(vm, { CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.id}`, ...opts.env }),
    );
  }

  /** Run one plugin binary directly in a VM (as a runtime execs it). */
  plugin(vm: VmHandle, plugin: string, env: Record<string, string>, stdin: string): Promise<Run> {
    return execAsync(
      ["ip", "netns", "exec", vm.nsName, path.join(this.binDir, plugin)],
      { ...this.env(vm), ...env },
      stdin,
    );
  }

  /** Start `tcnp agent` in a VM on its conf dir, logging to <vm dir>/agent.log (stderr passed on). */
  startAgent(vm: VmHandle, extra: string[] = []): ChildProcess {
    return spawn(
      "ip",
      [
        "netns",
        "exec",
        vm.nsName,
        distBinary,
        "agent",
        "--conf-dir",
        vm.confDir,
        "--log-file",
        path.join(vm.dir, "agent.log"),
        ...extra,
      ],
      { env: this.env(vm), stdio: ["ignore", "ignore", "inherit"] },
    );
  }

  /** `tcnp agent status --json` of a VM's agent: its pools, or undefined when none answers. */
  async agentPools(vm: VmHandle): Promise<PoolView[] | undefined> {
    const r = await execAsync(
      ["ip", "netns", "exec", vm.nsName, distBinary, "agent", "status", "--json"],
      this.env(vm),
    );
    return r.status === 0 ? (JSON.parse(r.stdout) as { pools: PoolView[] }).pools : undefined;
  }

  exec(nsName: string, argv: string[]): Promise<Run> {
    return execAsync(["ip", "netns", "exec", nsName, ...argv], { PATH: process.env["PATH"] ?? "/usr/bin:/bin" });
  }

  async ping(fromNs: string, to: string): Promise<boolean> {
    return (await this.exec(fromNs, ["ping", "-c", "1", "-W", "2", "-q", to])).status === 0;
  }

  vmPort(vm: VmHandle, networkId: string): { id: string; ips: string[] } {
    const p = Object.values(this.em.world.ports).find(
      (x) => x.device_id === vm.serverId && x.network_id === networkId && !x.tags.includes("tcnp-eni"),
    );
    return { id: p!.id, ips: p!.fixed_ips.map((f) => f.ip_address).sort() };
  }

  async stop(): Promise<void> {
    for (const s of this.#served) await s.close();
    await this.em?.settle();
    for (const p of this.#pods) await this.kernel.deleteNetns(p);
    if (this.topo !== undefined) await destroyTopology(this.kernel, this.topo);
    this.kernel?.close();
    // TCNP_TEST_KEEP=DIR keeps the VMs' logs and records there, for a failure that does not repeat.
    const keep = process.env["TCNP_TEST_KEEP"];
    if (keep !== undefined && keep !== "" && this.dir !== "")
      fs.cpSync(this.dir, path.join(keep, path.basename(this.dir)), {
        recursive: true,
        filter: (f) => !f.includes(`${path.sep}bin${path.sep}`) && !f.endsWith(`${path.sep}bin`),
      });
    if (this.dir !== "") fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
