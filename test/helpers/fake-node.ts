// A whole node in memory: the emulator as the cloud, a fake kernel as the VM, and plugin
// dependencies wired to both (state in a temp dir). For fast tests of the plugins' logic.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Emulator, type EmulatorConfig } from "../../src/cloud/emulator.js";
import { applySeed, type Seed } from "../../src/cloud/seed.js";
import type { CniPlugin } from "../../src/cni/skel.js";
import type { NodeDeps } from "../../src/bin/wiring.js";
import { createIpam } from "../../src/ipam/plugin.js";
import { OneShotWriter } from "../../src/ipam/node.js";
import { NodeCache } from "../../src/ipam/node-cache.js";
import { FileTokenStore } from "../../src/openstack/token-cache.js";
import { FakeKernel } from "../../src/kernel/fake-kernel.js";
import { HOST } from "../../src/kernel/types.js";
import { createLogger, memorySink } from "../../src/log/logger.js";
import { fileSources } from "../../src/openstack/credentials.js";
import { systemClock } from "../../src/base/clock.js";
import { execIpam } from "../../src/bin/exec-ipam.js";
import { FileIntentLocks, FileLock } from "../../src/state/lock.js";

export const MIX_NET = "b9535039-d935-4a33-a7cb-2cc1c58ab904";
export const ENI_NET = "73fe8ad8-eda8-4ee0-9d10-ffca11752362";
export const VM1 = "10000000-0000-4000-8000-000000000001";
export const VM1_MAC = "fa:16:3e:00:01:01";

export const nodeSeed = (): Seed => ({
  networks: [
    {
      id: MIX_NET,
      name: "mix",
      subnets: [{ id: "20000000-0000-4000-8000-000000000001", name: "mix-v4", cidr: "10.10.10.0/24" }],
    },
    {
      id: ENI_NET,
      name: "eni",
      subnets: [{ id: "20000000-0000-4000-8000-000000000002", name: "eni-v4", cidr: "10.10.20.0/24" }],
    },
  ],
  routers: [{ id: "30000000-0000-4000-8000-000000000001", name: "r1", interfaces: ["mix-v4", "eni-v4"] }],
  servers: [
    {
      id: VM1,
      name: "vm1",
      ports: [
        { network: "mix", ip: "10.10.10.11", mac: VM1_MAC },
        { network: "eni", ip: "10.10.20.11", mac: "fa:16:3e:00:02:01" },
      ],
    },
  ],
});

/** The seed's credentials, with authUrl pointed at the in-memory cloud. */
export const testOpenstackConf = (): Record<string, string> => ({
  username: "admin",
  password: "secret",
  project: "admin",
  domain: "default",
  authUrl: "http://cloud.test/v3",
});

/** The seed's mix configuration, as written, with authUrl pointed at the in-memory cloud. */
export const mixConf = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: "cni0",
  cniVersion: "0.3.1",
  type: "veth-route",
  ipam: {
    type: "tcnp-ipam",
    openstackConf: testOpenstackConf(),
    neutronConf: { networks: [MIX_NET], mode: "mix" },
    routes: [{ dst: "0.0.0.0/0" }],
    // Addresses go back to Neutron at DEL, as the tests of other behaviours expect; the
    // cool-down (default 30 s) has tests of its own that set it.
    coolDownSeconds: 0,
  },
  ...over,
});

export interface FakeNode {
  em: Emulator;
  kernel: FakeKernel;
  deps: NodeDeps;
  ipam: CniPlugin;
  stateDir: string;
  logs: string[];
  cleanup(): void;
}

export async function fakeNode(opts: { config?: Partial<EmulatorConfig>; seed?: Seed } = {}): Promise<FakeNode> {
  const em = new Emulator({ config: { detachDelayMs: 5, ...opts.config } });
  applySeed(em, opts.seed ?? nodeSeed());
  const kernel = new FakeKernel();
  kernel.addDevice(HOST, { name: "eth0", mac: VM1_MAC, mtu: 1450 });
  await kernel.setLink(HOST, "eth0", { up: true });
  await kernel.addAddress(HOST, { cidr: "10.10.10.11/24", dev: "eth0" });
  await kernel.addRoute(HOST, { dst: "0.0.0.0/0", gw: "10.10.10.1", dev: "eth0" });
  kernel.addDevice(HOST, { name: "eth1", mac: "fa:16:3e:00:02:01", mtu: 1450 });
  await kernel.setLink(HOST, "eth1", { up: true });
  await kernel.addAddress(HOST, { cidr: "10.10.20.11/24", dev: "eth1" });
  kernel.writeSysctl(HOST, "net.ipv4.ip_forward", "1");
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-node-"));
  const sink = memorySink();
  const env = { TCNP_STATE_DIR: stateDir, TCNP_LOCK_DIR: path.join(stateDir, "locks") };
  // The cloud sees this VM's requests as coming from its own address (metadata finds it by that).
  const vmFetch: NodeDeps["httpFetch"] = () => (req) => em.fetch({ ...req, remoteAddress: "10.10.10.11" });
  let ipam: CniPlugin | undefined;
  const deps: NodeDeps = {
    kernel: async () => kernel,
    log: createLogger(sink, { level: "debug" }),
    clock: systemClock,
    env,
    httpFetch: vmFetch,
    sources: fileSources(env),
    readFile: (f) => {
      try {
        return fs.readFileSync(f, "utf8");
      } catch {
        return undefined;
      }
    },
    lockFor: (dir) => new FileLock(dir, systemClock),
    writer: new OneShotWriter(new FileLock(env.TCNP_LOCK_DIR, systemClock), new FileIntentLocks(env.TCNP_LOCK_DIR)),
    tokensFor: (dir) => new FileTokenStore(dir),
    cacheFor: (stateDir) => new NodeCache(stateDir),
    ipam: (type) => (type === "tcnp-ipam" ? (ipam ??= createIpam(deps)) : execIpam(type, env)),
  };
  return {
    em,
    kernel,
    deps,
    ipam: createIpam(deps),
    stateDir,
    logs: sink.lines,
    cleanup: () => fs.rmSync(stateDir, { recursive: true, force: true }),
  };
}

export const cniEnv = (
  command: string,
  containerId: string,
  netns: string,
  ifname = "eth0",
): Record<string, string> => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: containerId,
  CNI_NETNS: netns,
  CNI_IFNAME: ifname,
  CNI_PATH: "/opt/cni/bin",
  CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-${containerId.slice(0, 6)}`,
});
