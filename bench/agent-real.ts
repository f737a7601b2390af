// A burst of N mix pods ADDed at once on one VM against the real Keystone + Neutron + Nova here
// (scripts/realcloud/setup.sh), through the node agent (warm pool of W) and through the plugin path,
// same run: first start → last ADD returns, then the DEL burst. The "VM" is a namespace whose eth0
// carries a real Nova server's port (MAC and address); the cloud is reached through its loopback.
//   . scripts/realcloud/env.sh; node build/bench/agent-real.js [pods=30] [warm=10]   (root)
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { systemClock } from "../src/base/clock.js";
import { NetlinkKernel } from "../src/kernel/netlink-kernel.js";
import { createClients } from "../src/openstack/clients.js";
import { distBinary } from "../test/helpers/cni.js";
import { addNetns, cleanupNamespaces } from "../test/helpers/namespaces.js";
import { proxyLoopback } from "../test/helpers/loopback-proxy.js";
import { realCloud } from "../test/helpers/realcloud.js";
import { ms, summary, table } from "./stats.js";

const PODS = Number(process.argv[2] ?? 30);
const WARM = Number(process.argv[3] ?? 10);
const rc = realCloud();
if (rc.auth.authUrl === "") throw new Error("no real cloud: . scripts/realcloud/env.sh first");
const c = createClients({ auth: rc.auth, fetch: rc.fetch, clock: systemClock });
const kernel = await NetlinkKernel.create();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-agent-real-"));
const undo: Array<() => Promise<unknown>> = [];
let proxy: { close(): Promise<void> } | undefined;
let agent: ChildProcess | undefined;
const rows: Array<Array<string | number>> = [];

const exec = (argv: string[], env: Record<string, string>): Promise<{ ms: number; code: number; out: string }> =>
  new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const p = spawn(argv[0]!, argv.slice(1), { env });
    let out = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    p.on("close", (code) => resolve({ ms: ms(t0), code: code ?? -1, out }));
    const conf = path.join(dir, "net.d", "10-tcnp.conf");
    p.stdin.end(fs.existsSync(conf) ? fs.readFileSync(conf) : "");
  });

try {
  const net = await c.neutron.createNetwork({ name: "tcnp-agent-bench" });
  undo.push(() => c.neutron.deleteNetwork(net.id));
  const sub = await c.neutron.createSubnet({ network_id: net.id, cidr: "10.233.0.0/24", ip_version: 4 });
  const port = await c.neutron.createPort({
    network_id: net.id,
    fixed_ips: [{ subnet_id: sub.id, ip_address: "10.233.0.25" }],
  });
  undo.push(() => c.neutron.deletePort(port.id));
  const server = await c.nova.createServer({
    name: "tcnp-agent-bench-vm",
    imageRef: rc.image,
    flavorRef: rc.flavor,
    networks: [{ port: port.id }],
  });
  undo.push(() => c.nova.deleteServer(server.id));
  for (let i = 0; i < 600 && (await c.nova.getServer(server.id)).status !== "ACTIVE"; i++)
    await new Promise((r) => setTimeout(r, 200));
  const vm = addNetns("benchvm");
  const peer = addNetns("benchpeer");
  await kernel.createVeth(vm.path, { name: "eth0", mac: port.mac_address, peer: { name: "eth0", netns: peer.path } });
  await kernel.setLink(vm.path, "eth0", { up: true });
  await kernel.setLink(vm.path, "lo", { up: true });
  await kernel.addAddress(vm.path, { cidr: "10.233.0.25/24", dev: "eth0" });
  kernel.writeSysctl(vm.path, "net.ipv4.ip_forward", "1");
  proxy = await proxyLoopback(vm.path, [5000, 9696, 8774]);
  const bin = path.join(dir, "bin");
  await exec([distBinary, "install", "--bin-dir", bin], { PATH: process.env["PATH"] ?? "" });
  fs.mkdirSync(path.join(dir, "net.d"));
  fs.writeFileSync(
    path.join(dir, "net.d", "10-tcnp.conf"),
    JSON.stringify({
      name: "cni0",
      cniVersion: "1.0.0",
      type: "veth-route",
      ipam: {
        type: "tcnp-ipam",
        openstackConf: {
          username: rc.auth.username,
          password: rc.auth.password,
          project: rc.auth.projectName,
          domain: "default",
          authUrl: rc.auth.authUrl,
        },
        neutronConf: { networks: [net.id], mode: "mix" },
        pool: { warmTarget: WARM },
        metadataUrl: null,
        serverId: server.id,
      },
    }),
  );
  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    PATH: process.env["PATH"] ?? "",
    CNI_PATH: bin,
    TCNP_STATE_DIR: path.join(dir, "state"),
    TCNP_LOCK_DIR: path.join(dir, "locks"),
    TCNP_LOG_FILE: path.join(dir, "tcnp.log"),
    TCNP_AGENT_SOCKET: path.join(dir, "agent", "agent.sock"),
    ...extra,
  });
  agent = spawn(
    "ip",
    [
      "netns",
      "exec",
      vm.name,
      distBinary,
      "agent",
      "--conf-dir",
      path.join(dir, "net.d"),
      "--log-file",
      path.join(dir, "agent.log"),
    ],
    { env: env(), stdio: "ignore" },
  );
  const free = async (): Promise<number> => {
    const r = await exec(["ip", "netns", "exec", vm.name, distBinary, "agent", "status", "--json"], env());
    try {
      return (JSON.parse(r.out) as { pools: Array<{ free: string[] }> }).pools[0]?.free.length ?? 0;
    } catch {
      return 0;
    }
  };
  for (const via of ["agent", "plugin"] as const) {
    if (via === "agent")
      for (let i = 0; i < 600 && (await free()) < WARM; i++) await new Promise((r) => setTimeout(r, 200));
    else {
      // The plugin path: the agent stopped (while it runs it is the node's one writer and serves).
      const gone = new Promise((r) => agent!.once("exit", r));
      agent!.kill("SIGTERM");
      await gone;
    }
    const extra = via === "plugin" ? { TCNP_AGENT: "off" } : {};
    const pods = Array.from({ length: PODS }, (_, i) => ({ ...addNetns(`bp${via[0]}${i}`), id: `bench${via}${i}` }));
    const cni = (cmd: string, p: { path: string; id: string }) =>
      exec(
        ["ip", "netns", "exec", vm.name, path.join(bin, "veth-route")],
        env({ ...extra, CNI_COMMAND: cmd, CNI_CONTAINERID: p.id, CNI_NETNS: p.path, CNI_IFNAME: "eth0" }),
      );
    const t0 = process.hrtime.bigint();
    const adds = await Promise.all(pods.map((p) => cni("ADD", p)));
    const addMs = ms(t0);
    const failed = adds.filter((a) => a.code !== 0);
    const ips = adds
      .filter((a) => a.code === 0)
      .map((a) => (JSON.parse(a.out) as { ips: Array<{ address: string }> }).ips[0]!.address.split("/")[0]!);
    const onPort = (await c.neutron.getPort(port.id)).fixed_ips.map((f) => f.ip_address);
    const ok = failed.length === 0 && new Set(ips).size === PODS && ips.every((ip) => onPort.includes(ip));
    const t1 = process.hrtime.bigint();
    const dels = await Promise.all(pods.map((p) => cni("DEL", p)));
    const delMs = ms(t1);
    rows.push([
      via === "agent" ? `through the agent (warm ${WARM})` : "plugin path (no agent)",
      PODS,
      Math.round(addMs),
      summary(adds.map((a) => a.ms)).median,
      ok ? "yes" : `NO (${failed.length} failed: ${failed[0]?.out.slice(0, 200) ?? ""})`,
      Math.round(delMs),
      dels.every((d) => d.code === 0) ? "yes" : "NO",
    ]);
  }
} finally {
  if (agent?.exitCode === null) agent.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 500));
  if (fs.existsSync(path.join(dir, "agent.log")))
    fs.copyFileSync(path.join(dir, "agent.log"), "/tmp/tcnp-agent-real.log");
  for (const f of undo.reverse()) await f().catch(() => {});
  await proxy?.close();
  kernel.close();
  cleanupNamespaces();
  fs.rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(
  `${PODS} mix ADDs at once on one VM against the real Keystone + Neutron (${rc.auth.authUrl})\n${table(
    [
      "path",
      "pods",
      "first start → last ADD returns, ms",
      "median ADD ms",
      "distinct, on the port",
      "DEL burst ms",
      "DELs ok",
    ],
    rows,
  )}\n`,
);
