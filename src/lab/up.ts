// `tcnp lab up`: a whole small cloud on this kernel — the embedded OpenStack in a service namespace,
// the networks as bridges, a router with an outside, VMs with the seed configurations installed —
// then pods in both modes through a real CNI caller, the route controller, Service and NodePort
// rules as kube-proxy makes them, and the connectivity matrix.
import * as fs from "node:fs";
import * as path from "node:path";
import { Emulator } from "../cloud/emulator.js";
import { applySeed } from "../cloud/seed.js";
import { install } from "../install/install.js";
import type { Io } from "../base/io.js";
import { namedNetns, netnsName, type Kernel } from "../kernel/types.js";
import { cidrContains, parseCidr, parseIp } from "../net/ip.js";
import { nodeFetch } from "../openstack/node-fetch.js";
import type { HttpFetch } from "../openstack/http.js";
import { createClients } from "../openstack/clients.js";
import { systemClock } from "../base/clock.js";
import { nullLogger } from "../log/logger.js";
import { FIP_ADDRESS_ANNOTATION, FIP_ANNOTATION, syncFloatingIps } from "../controller/floating.js";
import type { PodInfo } from "../controller/kube.js";
import { buildTopology, describeTopology, topologyNamespaces, type Topology, type TopologySpec } from "./topology.js";
import { provision, realClients } from "./real.js";
import { renderMatrix, runCheck, type Check, type CheckResult } from "./matrix.js";
import { askAgent } from "../agent/protocol.js";
import { startLabAgent } from "./agents.js";
import { inNetns, run, startDaemon } from "./proc.js";
import { eniConflist, LAB, labSeed, labServerId, mixConf } from "./spec.js";
import { agentSocket, isOurs, readLab, writeLab, type LabPod, type LabState } from "./state.js";

export interface LabOptions {
  dir: string;
  vms: number;
  io: Io;
  kernel: Kernel;
  /** How to run this executable (argv prefix). */
  self: string[];
  /** The executable file to install into the VMs' CNI bin dir. */
  selfFile: string;
  cnicaller: string;
  /** A real OpenStack instead of the embedded one. */
  cloud?: { name: string; cloudsYaml?: string; image: string; flavor: string };
}

export async function labUp(o: LabOptions): Promise<number> {
  const t0 = performance.now();
  const say = (m: string): void => o.io.out(`[lab ${((performance.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);
  const existing = readLab(o.dir);
  if (existing !== undefined) {
    o.io.err(`A lab is already recorded in ${o.dir} (status: ${existing.status}). Run "tcnp lab down" first.\n`);
    return 2;
  }
  // "down" removes the lab's directory: never let that be a directory with someone else's files.
  if (fs.existsSync(o.dir) && fs.readdirSync(o.dir).length > 0) {
    o.io.err(
      `${o.dir} exists and is not empty: give "tcnp lab up --dir" a new or empty directory (tcnp lab down removes it).\n`,
    );
    return 2;
  }
  // Another lab (recorded elsewhere) or leftovers own the names: refuse rather than adopt them, so
  // that "down" never removes what this "up" did not make.
  const taken = fs.existsSync("/var/run/netns")
    ? fs.readdirSync("/var/run/netns").filter((n) => n.startsWith(`${LAB.prefix}-`))
    : [];
  if (taken.length > 0) {
    o.io.err(
      `Network namespaces named ${LAB.prefix}-* already exist (${taken.join(", ")}): another lab is up, or one was not taken down. Run "tcnp lab down --dir DIR" for it, or remove them with "ip netns del".\n`,
    );
    return 2;
  }
  const s: LabState = {
    dir: o.dir,
    status: "building",
    startedAt: new Date().toISOString(),
    namespaces: [],
    processes: [],
    vms: [],
    pods: [],
  };
  writeLab(s);
  try {
    await build(o, s, say);
    s.status = "up";
    writeLab(s);
    const results = await matrix(s);
    o.io.out(`\nconnectivity matrix\n${renderMatrix(results)}\n\n`);
    const failed = results.filter((r) => !r.ok).length;
    o.io.out(
      `${results.length - failed} of ${results.length} paths work. The lab stays up: "tcnp lab status", "tcnp lab doctor POD", "tcnp lab down".\n`,
    );
    return failed === 0 ? 0 : 1;
  } catch (e) {
    s.status = "failed";
    s.error = (e as Error).message;
    writeLab(s);
    o.io.err(`\nlab up failed: ${(e as Error).message}\nRun "tcnp lab down" to remove what was made.\n`);
    return 1;
  }
}

interface CloudSide {
  authUrl: string;
  spec: TopologySpec;
  mixNet: string;
  eniNet: string;
  router: string;
  /** The plugins' and the controller's `openstackConf`. */
  openstackConf: Record<string, unknown>;
  /** Where the route controller runs (the embedded cloud is only reachable inside the lab). */
  controllerNs?: string;
  /** Started once the VMs are recorded. */
  afterVms?: () => Promise<void>;
}

const topoBase = { prefix: LAB.prefix, serviceCidr: LAB.serviceCidr, externalCidr: LAB.externalCidr };
/** The cloud's service address (and the router's route to the metadata address goes there). */
const serviceIp = describeTopology({ ...topoBase, networks: [], vms: [] }).serviceIp;

// The embedded OpenStack: its world written where the cloud process loads it, the data plane built
// from that world, then the cloud started inside the service namespace with its data-path hooks.
async function embeddedCloud(o: LabOptions, s: LabState, say: (m: string) => void): Promise<CloudSide> {
  const authUrl = `http://${serviceIp}:${LAB.cloudPort}/v3`;
  const em = new Emulator({
    stateFile: path.join(o.dir, "cloud-state.json"),
    config: { publicUrl: authUrl.replace(/\/v3$/, ""), detachDelayMs: 200 },
  });
  applySeed(em, labSeed(o.vms));
  em.persist();
  s.authUrl = authUrl;
  const routerPort = (net: string): string =>
    Object.values(em.world.ports).find((p) => p.device_owner === "network:router_interface" && p.network_id === net)!
      .mac_address;
  const spec: TopologySpec = {
    ...topoBase,
    networks: [
      { id: LAB.mixNet, cidr: "10.10.10.0/24", gateway: "10.10.10.1", routerMac: routerPort(LAB.mixNet), mtu: 1450 },
      { id: LAB.eniNet, cidr: "10.10.20.0/24", gateway: "10.10.20.1", routerMac: routerPort(LAB.eniNet), mtu: 1450 },
    ],
    vms: Array.from({ length: o.vms }, (_, i) => {
      const port = Object.values(em.world.ports).find((p) => p.device_id === labServerId(i + 1))!;
      return {
        name: `vm${i + 1}`,
        serverId: labServerId(i + 1),
        defaultVia: "eth0",
        nics: [{ name: "eth0", network: LAB.mixNet, mac: port.mac_address, ip: port.fixed_ips[0]!.ip_address }],
      };
    }),
  };
  const topo = await network(o, s, spec, say);
  fs.writeFileSync(
    path.join(o.dir, "datapath.json"),
    JSON.stringify({
      datapath: {
        networks: {
          [LAB.mixNet]: { netns: topo.ns.net, bridge: topo.bridge(LAB.mixNet) },
          [LAB.eniNet]: { netns: topo.ns.net, bridge: topo.bridge(LAB.eniNet) },
        },
        servers: Object.fromEntries(spec.vms.map((v) => [v.serverId, { netns: topo.ns.vms[v.name]! }])),
        routers: { [LAB.router]: { netns: topo.ns.router, external: "qg" } },
      },
    }),
  );
  s.cloudSocket = path.join(o.dir, "cloud.sock");
  s.processes.push(
    startDaemon(
      "cloud",
      inNetns(netnsName(topo.ns.svc), [
        ...o.self,
        "cloud",
        "--listen",
        `${topo.serviceIp}:${LAB.cloudPort}`,
        "--listen",
        "169.254.169.254:80",
        "--listen",
        `unix:${s.cloudSocket}`,
        "--state",
        path.join(o.dir, "cloud-state.json"),
        "--seed",
        path.join(o.dir, "datapath.json"),
        "--public-url",
        authUrl.replace(/\/v3$/, ""),
        "--log-file",
        path.join(o.dir, "cloud.log"),
      ]),
      path.join(o.dir, "cloud.out"),
      "cloud",
    ),
  );
  writeLab(s);
  await waitFor(
    "the cloud to answer",
    async () =>
      (
        await nodeFetch({ timeoutMs: 1000 })({
          method: "GET",
          url: `http+unix://${encodeURIComponent(s.cloudSocket!)}/v3`,
          headers: {},
        }).catch(() => ({ status: 0 }))
      ).status === 200,
    20_000,
  );
  say(
    `embedded OpenStack up at ${authUrl} (inside ${netnsName(topo.ns.svc)}), metadata at 169.254.169.254; the documented admin user (see the VMs' CNI configurations)`,
  );
  return {
    authUrl,
    spec,
    mixNet: LAB.mixNet,
    eniNet: LAB.eniNet,
    router: LAB.router,
    controllerNs: netnsName(topo.ns.svc),
    openstackConf: { username: "admin", password: "secret", project: "admin", domain: "default", authUrl },
  };
}

// A real OpenStack (a clouds.yaml entry): the lab's own networks, router and servers made there, the
// data plane built from them, and the agent (hot-plug, router routes, metadata, endpoint relays).
async function realCloud(o: LabOptions, s: LabState, say: (m: string) => void): Promise<CloudSide> {
  const rc = o.cloud!;
  s.cloud = {
    name: rc.name,
    ...(rc.cloudsYaml === undefined ? {} : { cloudsYaml: rc.cloudsYaml }),
    networks: [],
    subnets: [],
    routerSubnets: [],
    ports: [],
    servers: [],
  };
  writeLab(s);
  const c = realClients(s.cloud, o.io.env);
  s.authUrl = c.authUrl;
  say(`real OpenStack "${rc.name}" at ${c.authUrl}: making the lab's networks, router and servers there`);
  const p = await provision(
    c,
    s.cloud,
    { vms: o.vms, image: rc.image, flavor: rc.flavor },
    () => writeLab(s),
    (m) => say(`  ${m}`),
  );
  const spec: TopologySpec = {
    ...topoBase,
    networks: [
      { id: p.mix.net, cidr: "10.10.10.0/24", gateway: "10.10.10.1", routerMac: p.mix.routerMac, mtu: p.mix.mtu },
      { id: p.eni.net, cidr: "10.10.20.0/24", gateway: "10.10.20.1", routerMac: p.eni.routerMac, mtu: p.eni.mtu },
    ],
    vms: p.servers.map((v, i) => ({
      name: `vm${i + 1}`,
      serverId: v.id,
      defaultVia: "eth0",
      nics: [{ name: "eth0", network: p.mix.net, mac: v.mac, ip: v.ip }],
    })),
  };
  await network(o, s, spec, say);
  const afterVms = async (): Promise<void> => {
    const agent = startDaemon(
      "agent",
      [...o.self, "lab", "agent", "--dir", o.dir],
      path.join(o.dir, "agent.out"),
      `--dir ${o.dir}`,
    );
    s.processes.push(agent);
    writeLab(s);
    await waitFor(
      "the lab agent",
      async () => {
        if (fs.existsSync(path.join(o.dir, "agent.ready"))) return true;
        if (!isOurs(agent))
          throw new Error(
            `the lab agent exited: ${fs.readFileSync(path.join(o.dir, "agent.out"), "utf8").trim().split("\n").slice(-3).join(" ")}`,
          );
        return false;
      },
      60_000,
    );
    say(
      "lab agent running: NICs hot-plugged on Nova attach, router routes applied, metadata at 169.254.169.254, the cloud's endpoints relayed into the VMs",
    );
  };
  const openstackConf = { cloud: rc.name, ...(rc.cloudsYaml === undefined ? {} : { cloudsYaml: rc.cloudsYaml }) };
  return { authUrl: c.authUrl, spec, mixNet: p.mix.net, eniNet: p.eni.net, router: p.router, openstackConf, afterVms };
}

async function network(o: LabOptions, s: LabState, spec: TopologySpec, say: (m: string) => void): Promise<Topology> {
  const topo = describeTopology(spec);
  s.namespaces = topologyNamespaces(topo).map(netnsName);
  writeLab(s);
  say(
    "building the network: a bridge per Neutron network, the router, the cloud's service namespace, an outside client, the VMs",
  );
  await buildTopology(o.kernel, spec, (m) => say(`  ${m}`));
  return topo;
}

async function build(o: LabOptions, s: LabState, say: (m: string) => void): Promise<void> {
  const k = o.kernel;
  const cs = o.cloud === undefined ? await embeddedCloud(o, s, say) : await realCloud(o, s, say);
  const { spec } = cs;
  // 4. Each VM gets the CNI bin dir and the seed configurations, authUrl pointed at the lab cloud.
  const bin = path.join(o.dir, "bin");
  install({ source: o.selfFile, binDir: bin });
  for (const v of spec.vms) {
    const dir = path.join(o.dir, v.name);
    for (const d of ["net.d-eni", "net.d-mix", "state", "cache"])
      fs.mkdirSync(path.join(dir, d), { recursive: true, mode: 0o700 });
    fs.writeFileSync(
      path.join(dir, "net.d-eni", "10-cnichain.conflist"),
      JSON.stringify(eniConflist(cs.openstackConf, cs.eniNet), null, 2),
      { mode: 0o600 },
    );
    fs.writeFileSync(
      path.join(dir, "net.d-mix", "10-tcnp.conf"),
      JSON.stringify(mixConf(cs.openstackConf, cs.mixNet), null, 2),
      { mode: 0o600 },
    );
    s.vms.push({ name: v.name, serverId: v.serverId, ns: `${LAB.prefix}-${v.name}`, ip: v.nics[0]!.ip, dir });
  }
  writeLab(s);
  await cs.afterVms?.();
  say(
    `seed configurations installed in ${spec.vms.map((v) => v.name).join(", ")}: ${path.join(o.dir, "vmN", "net.d-eni", "10-cnichain.conflist")} and net.d-mix/10-tcnp.conf`,
  );
  // 5. The route controller, in the service namespace next to the cloud.
  s.controllerSocket = path.join(o.dir, "controller.sock");
  fs.writeFileSync(
    path.join(o.dir, "controller.json"),
    JSON.stringify(
      {
        openstack: cs.openstackConf,
        routerId: cs.router,
        networks: [cs.mixNet],
        intervalSeconds: 1,
        listen: `unix:${s.controllerSocket}`,
        kubernetes: { enabled: false },
        logFile: path.join(o.dir, "controller.log"),
      },
      null,
      2,
    ),
    { mode: 0o600 },
  );
  const controllerArgv = [...o.self, "route-controller", "--config", path.join(o.dir, "controller.json")];
  s.processes.push(
    startDaemon(
      "route-controller",
      cs.controllerNs === undefined ? controllerArgv : inNetns(cs.controllerNs, controllerArgv),
      path.join(o.dir, "controller.out"),
      "route-controller",
    ),
  );
  writeLab(s);
  say("vrouter-route-controller running (reconciling every 1 s)");
  // 5b. A node agent in each VM: warm pools, the plugins' requests.
  for (const vm of s.vms) s.processes.push(startLabAgent(s, vm, o.self));
  writeLab(s);
  for (const vm of s.vms) {
    await waitFor(
      `the node agent of ${vm.name} to warm its pool`,
      async () => {
        const v = (await askAgent(agentSocket(vm), { op: "status" }, 2000).catch(() => undefined)) as
          { pools: Array<{ ready: boolean }> } | undefined;
        return v !== undefined && v.pools.length > 0 && v.pools.every((p) => p.ready);
      },
      60_000,
    );
  }
  say(`node agents running in ${s.vms.map((v) => v.name).join(", ")}, pools warm (tcnp lab status shows them)`);
  // 6. Pods through a real CNI caller (libcni), as a kubelet's runtime would.
  for (const vm of s.vms) {
    for (const [mode, tag] of [
      ["mix", "mix-a"],
      ["mix", "mix-b"],
      ["eni", "eni-a"],
    ] as const) {
      const pod: LabPod = {
        vm: vm.name,
        mode,
        ns: `${LAB.prefix}-${vm.name}-${tag}`,
        containerId: `lab${vm.name}${tag.replace("-", "")}`,
        podName: `${vm.name}-${tag}`,
      };
      s.pods.push(pod);
      writeLab(s);
      await k.createNetns(pod.ns);
      const r = await cni(o, vm, pod, "add");
      if (r.code !== 0)
        throw new Error(`ADD of ${pod.podName} (${mode}) failed: ${r.stderr.trim() || r.stdout.trim()}`);
      pod.ip = String((JSON.parse(r.stdout) as { ips: Array<{ address: string }> }).ips[0]!.address).split("/")[0]!;
      writeLab(s);
      say(`pod default/${pod.podName} (${mode}) on ${vm.name}: ${pod.ip}  [ADD ${r.ms.toFixed(0)} ms]`);
    }
  }
  await services(o, s, say);
  if (s.cloud === undefined) await floatingIp(s, cs, say);
  // Every mix pod covered by a route in the router's data plane (the controller may aggregate).
  const rtr = namedNetns(`${LAB.prefix}-rtr`);
  const gwRoutes = async (): Promise<Array<{ dst: string; gw: string }>> =>
    (await k.listRoutes(rtr))
      .filter((r) => r.gw !== undefined && r.dst !== "0.0.0.0/0")
      .map((r) => ({ dst: r.dst, gw: r.gw! }));
  const mixIps = s.pods.filter((p) => p.mode === "mix").map((p) => parseIp(p.ip!));
  await waitFor(
    "the router routes to the mix pods",
    async () => {
      const routes = await gwRoutes();
      return mixIps.every((ip) => routes.some((r) => cidrContains(parseCidr(r.dst), ip)));
    },
    15_000,
  );
  say(
    `router routes made by the controller: ${(await gwRoutes())
      .filter((r) => r.gw !== serviceIp)
      .map((r) => `${r.dst} via ${r.gw}`)
      .join(", ")}`,
  );
}

export function cni(
  o: Pick<LabOptions, "dir" | "cnicaller">,
  vm: { ns: string; dir: string },
  pod: LabPod,
  verb: "add" | "del" | "check",
): ReturnType<typeof run> {
  return run(inNetns(vm.ns, [o.cnicaller, verb, "cni0", namedNetns(pod.ns), pod.containerId]), {
    timeoutMs: 120_000,
    env: {
      NETCONFPATH: path.join(vm.dir, pod.mode === "mix" ? "net.d-mix" : "net.d-eni"),
      CNI_PATH: `${path.join(o.dir, "bin")}:/usr/lib/cni`,
      CNI_CACHEDIR: path.join(vm.dir, "cache"),
      TCNP_STATE_DIR: path.join(vm.dir, "state"),
      TCNP_LOCK_DIR: path.join(vm.dir, "locks"),
      TCNP_LOG_FILE: path.join(vm.dir, "tcnp.log"),
      TCNP_AGENT_SOCKET: agentSocket(vm),
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${pod.podName}`,
    },
  });
}

// A floating IP for vm1's mix pod, by the route controller's own floating IP code (the pod asks
// with the annotation "auto", as it would in Kubernetes); the embedded Neutron's data path NATs it
// in the router. The cloud answers inside the lab only: requests go through its socket.
async function floatingIp(s: LabState, cs: CloudSide, say: (m: string) => void): Promise<void> {
  const pod = s.pods.find((p) => p.podName === "vm1-mix-a")!;
  const sock = `http+unix://${encodeURIComponent(s.cloudSocket!)}`;
  const base = nodeFetch({ timeoutMs: 30_000 });
  const fetch: HttpFetch = (req, opts) => base({ ...req, url: req.url.replace(/^http:\/\/[^/]+/, sock) }, opts);
  // The lab's documented admin user (the VMs' configurations carry the same).
  const clients = createClients({
    auth: {
      authUrl: `${sock}/v3`,
      username: "admin",
      password: "secret",
      projectName: "admin",
      userDomainId: "default",
      projectDomainId: "default",
      interface: "public",
    },
    fetch,
    clock: systemClock,
  });
  const ext = (await clients.neutron.listNetworks({ name: "ext" }))[0]!;
  const info: PodInfo = {
    namespace: "default",
    name: pod.podName,
    uid: pod.containerId,
    ip: pod.ip!,
    annotations: { [FIP_ANNOTATION]: "auto" },
  };
  const r = await syncFloatingIps({
    neutron: clients.neutron,
    kube: {
      listPods: async () => [info],
      annotatePod: async (_p, a) => {
        const fip = a[FIP_ADDRESS_ANNOTATION];
        if (typeof fip === "string") pod.floatingIp = fip;
      },
      createEvent: async (_p, reason, message) => say(`  event ${reason}: ${message}`),
    },
    // The lab's own pods' namespace may ask (auto).
    cfg: { network: ext.id, namespaces: { default: { auto: true, max: 4 } }, reservationMs: 0 },
    cluster: "default",
    networks: [cs.mixNet, cs.eniNet],
    log: nullLogger,
    now: () => Date.now(),
  });
  if (pod.floatingIp === undefined) throw new Error(`no floating IP for ${pod.podName} (${JSON.stringify(r)})`);
  writeLab(s);
  say(`floating IP ${pod.floatingIp} → ${pod.podName} (${pod.ip}), NAT in the router namespace`);
}

// Echo servers in three pods, and the rules kube-proxy would make: a ClusterIP on every VM whose
// backend is the eni pod on the second VM, and NodePorts on vm1 to its own mix and eni pods.
async function services(o: LabOptions, s: LabState, say: (m: string) => void): Promise<void> {
  const pod = (vm: string, tag: string): LabPod => s.pods.find((p) => p.podName === `${vm}-${tag}`)!;
  const backend = pod(s.vms.length > 1 ? "vm2" : "vm1", "eni-a");
  const targets = [backend, pod("vm1", "mix-a"), pod("vm1", "eni-a")];
  for (const t of [...new Set(targets)]) {
    s.processes.push(
      startDaemon(
        `echo ${t.podName}`,
        inNetns(t.ns, [...o.self, "lab", "echo-server", "--port", String(LAB.podPort), "--text", t.podName]),
        path.join(o.dir, `echo-${t.podName}.out`),
        `--text ${t.podName}`,
      ),
    );
  }
  writeLab(s);
  for (const vm of s.vms) {
    const rules = [
      `-d ${LAB.clusterIp}/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination ${backend.ip}:${LAB.podPort}`,
    ];
    if (vm.name === "vm1") {
      rules.push(
        `-d ${vm.ip}/32 -p tcp -m tcp --dport ${LAB.nodePort} -j DNAT --to-destination ${pod("vm1", "mix-a").ip}:${LAB.podPort}`,
      );
      rules.push(
        `-d ${vm.ip}/32 -p tcp -m tcp --dport ${LAB.nodePort + 1} -j DNAT --to-destination ${pod("vm1", "eni-a").ip}:${LAB.podPort}`,
      );
    }
    await o.kernel.applyIptables(namedNetns(vm.ns), {
      chains: [{ table: "nat", name: "LAB-KUBE-SERVICES", rules }],
      jumps: [
        { table: "nat", chain: "PREROUTING", rule: "-j LAB-KUBE-SERVICES" },
        { table: "nat", chain: "OUTPUT", rule: "-j LAB-KUBE-SERVICES" },
      ],
    });
  }
  say(
    `Service ${LAB.clusterIp}:80 → ${backend.podName} (${backend.ip}:${LAB.podPort}) on every VM; NodePorts vm1:${LAB.nodePort} → vm1-mix-a, vm1:${LAB.nodePort + 1} → vm1-eni-a`,
  );
  await waitFor(
    "the echo servers",
    async () => (await run(inNetns(backend.ns, ["nc", "-z", "-w", "1", backend.ip!, String(LAB.podPort)]))).code === 0,
    10_000,
  );
}

async function waitFor(what: string, f: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function labChecks(s: LabState): Check[] {
  const pod = (vm: string, tag: string): LabPod | undefined => s.pods.find((p) => p.podName === `${vm}-${tag}`);
  const vm1 = s.vms[0]!;
  const vm2 = s.vms[1] ?? vm1;
  const m1 = pod("vm1", "mix-a")!;
  const m1b = pod("vm1", "mix-b")!;
  const m2 = pod(vm2.name, "mix-a")!;
  const e1 = pod("vm1", "eni-a")!;
  const e2 = pod(vm2.name, "eni-a")!;
  const ext = `${LAB.prefix}-ext`;
  const p = (c: Omit<Check, "kind">, kind: Check["kind"] = "ping"): Check => ({ ...c, kind });
  return [
    p({ path: "pod → pod, same VM", from: m1.podName, to: m1b.podName, ns: m1.ns, target: m1b.ip! }),
    p({ path: "pod → pod, other VM (mix)", from: m1.podName, to: m2.podName, ns: m1.ns, target: m2.ip! }),
    p({ path: "pod → pod, other VM (eni)", from: e1.podName, to: e2.podName, ns: e1.ns, target: e2.ip! }),
    p({ path: "pod → pod, other mode", from: m1.podName, to: e2.podName, ns: m1.ns, target: e2.ip! }),
    p({ path: "pod → pod, other mode, same VM", from: e1.podName, to: m1.podName, ns: e1.ns, target: m1.ip! }),
    p({ path: "pod → its VM (mix)", from: m1.podName, to: vm1.name, ns: m1.ns, target: vm1.ip }),
    p({ path: "pod → its VM (eni, via veth0)", from: e1.podName, to: vm1.name, ns: e1.ns, target: vm1.ip }),
    p({ path: "VM → its pod (mix)", from: vm1.name, to: m1.podName, ns: vm1.ns, target: m1.ip! }),
    p({ path: "VM → its pod (eni)", from: vm1.name, to: e1.podName, ns: vm1.ns, target: e1.ip! }),
    p(
      {
        path: "pod → Service (mix)",
        from: m1.podName,
        to: `${LAB.clusterIp}:80 → ${e2.podName}`,
        ns: m1.ns,
        target: LAB.clusterIp,
        port: 80,
        expect: e2.podName,
      },
      "tcp",
    ),
    p(
      {
        path: "pod → Service (eni)",
        from: e1.podName,
        to: `${LAB.clusterIp}:80 → ${e2.podName}`,
        ns: e1.ns,
        target: LAB.clusterIp,
        port: 80,
        expect: e2.podName,
      },
      "tcp",
    ),
    p({ path: "outside → pod via router (mix)", from: "outside", to: m2.podName, ns: ext, target: m2.ip! }),
    ...(m1.floatingIp === undefined
      ? []
      : [
          p(
            {
              path: "outside → pod via floating IP",
              from: "outside",
              to: `${m1.floatingIp} → ${m1.podName}`,
              ns: ext,
              target: m1.floatingIp,
              port: LAB.podPort,
              expect: m1.podName,
            },
            "tcp",
          ),
        ]),
    p({ path: "outside → pod via router (eni)", from: "outside", to: e2.podName, ns: ext, target: e2.ip! }),
    p(
      {
        path: "outside → NodePort → local pod (mix)",
        from: "outside",
        to: `${vm1.name}:${LAB.nodePort} → ${m1.podName}`,
        ns: ext,
        target: vm1.ip,
        port: LAB.nodePort,
        expect: m1.podName,
      },
      "tcp",
    ),
    p(
      {
        path: "outside → NodePort → local pod (eni)",
        from: "outside",
        to: `${vm1.name}:${LAB.nodePort + 1} → ${e1.podName}`,
        ns: ext,
        target: vm1.ip,
        port: LAB.nodePort + 1,
        expect: e1.podName,
      },
      "tcp",
    ),
  ];
}

export async function matrix(s: LabState): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const c of labChecks(s)) out.push(await runCheck(c));
  return out;
}
