// The same mix ADD/DEL against the real Keystone + Neutron + Nova: a VM namespace whose eth0 carries
// the MAC and address of a real Nova server's port; the seed configuration (authUrl and network ID
// pointed at the real cloud) through libcni. The real cloud has no data plane, so this checks the
// control plane: the address appears on the real port and goes again, the port ends as it began.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFile } from "node:child_process";
import { NetlinkKernel } from "../../src/kernel/netlink-kernel.js";
import { createClients, type Clients } from "../../src/openstack/clients.js";
import { systemClock } from "../../src/base/clock.js";
import { cnicallerBinary, distBinary, e2eSkipReason, REFERENCE_CNI_DIR } from "../helpers/cni.js";
import { addNetns, cleanupNamespaces } from "../helpers/namespaces.js";
import { proxyLoopback } from "../helpers/loopback-proxy.js";
import { realCloud, realCloudSkipReason } from "../helpers/realcloud.js";
import { rootSkipReason } from "../helpers/root.js";

const skip = realCloudSkipReason() ?? rootSkipReason() ?? e2eSkipReason();

const run = (
  argv: string[],
  env: Record<string, string>,
): Promise<{ status: number; stdout: string; stderr: string }> =>
  new Promise((resolve) =>
    execFile(argv[0]!, argv.slice(1), { env, encoding: "utf8", timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ status: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
    ),
  );

describe("mix mode against the real cloud", { skip: skip ?? false }, () => {
  let c: Clients;
  let kernel: NetlinkKernel;
  let proxy: { close(): Promise<void> } | undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-realmix-"));
  const undo: Array<() => Promise<unknown>> = [];
  before(async () => {
    const rc = realCloud();
    c = createClients({ auth: rc.auth, fetch: rc.fetch, clock: systemClock });
    kernel = await NetlinkKernel.create();
  });
  after(async () => {
    for (const f of undo.reverse()) await f().catch(() => {});
    await proxy?.close();
    kernel?.close();
    cleanupNamespaces();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("ADD puts an extra fixed IP on the VM's real port, DEL removes it; the port ends as it began", async () => {
    const rc = realCloud();
    const net = await c.neutron.createNetwork({ name: "tcnp-realmix" });
    undo.push(() => c.neutron.deleteNetwork(net.id));
    const sub = await c.neutron.createSubnet({
      network_id: net.id,
      cidr: "10.232.0.0/24",
      ip_version: 4,
      name: "tcnp-realmix",
    });
    const port = await c.neutron.createPort({
      network_id: net.id,
      fixed_ips: [{ subnet_id: sub.id, ip_address: "10.232.0.25" }],
    });
    undo.push(() => c.neutron.deletePort(port.id));
    const server = await c.nova.createServer({
      name: "tcnp-realmix-vm",
      imageRef: rc.image,
      flavorRef: rc.flavor,
      networks: [{ port: port.id }],
    });
    undo.push(() => c.nova.deleteServer(server.id));
    for (let i = 0; i < 600 && (await c.nova.getServer(server.id)).status !== "ACTIVE"; i++)
      await new Promise((r) => setTimeout(r, 200));
    // The "VM": a namespace whose eth0 is that port (MAC and address); the real cloud via its loopback.
    const vm = addNetns("realvm");
    const peer = addNetns("realpeer");
    await kernel.createVeth(vm.path, { name: "eth0", mac: port.mac_address, peer: { name: "eth0", netns: peer.path } });
    await kernel.setLink(vm.path, "eth0", { up: true });
    await kernel.setLink(vm.path, "lo", { up: true });
    await kernel.addAddress(vm.path, { cidr: "10.232.0.25/24", dev: "eth0" });
    kernel.writeSysctl(vm.path, "net.ipv4.ip_forward", "1");
    proxy = await proxyLoopback(vm.path, [5000, 9696, 8774]);
    const pod = addNetns("realpod");
    const bin = path.join(dir, "bin");
    await run([distBinary, "install", "--bin-dir", bin], { PATH: process.env["PATH"] ?? "" });
    const confDir = path.join(dir, "net.d");
    fs.mkdirSync(confDir);
    fs.writeFileSync(
      path.join(confDir, "10-tcnp.conf"),
      JSON.stringify({
        name: "cni0",
        cniVersion: "0.3.1",
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
          routes: [{ dst: "0.0.0.0/0" }],
          coolDownSeconds: 2,
        },
      }),
    );
    const env = {
      PATH: process.env["PATH"] ?? "",
      NETCONFPATH: confDir,
      CNI_PATH: `${bin}:${REFERENCE_CNI_DIR}`,
      CNI_CACHEDIR: path.join(dir, "cache"),
      TCNP_STATE_DIR: path.join(dir, "state"),
      TCNP_LOCK_DIR: path.join(dir, "locks"),
      TCNP_LOG_FILE: path.join(dir, "tcnp.log"),
    };
    const add = await run(["ip", "netns", "exec", vm.name, cnicallerBinary, "add", "cni0", pod.path, "realmix01"], env);
    assert.equal(
      add.status,
      0,
      `${add.stderr}\n${fs.existsSync(path.join(dir, "tcnp.log")) ? fs.readFileSync(path.join(dir, "tcnp.log"), "utf8").slice(-2000) : ""}`,
    );
    const ip = (JSON.parse(add.stdout) as { ips: Array<{ address: string }> }).ips[0]!.address.split("/")[0]!;
    const during = await c.neutron.getPort(port.id);
    assert.deepEqual(during.fixed_ips.map((f) => f.ip_address).sort(), ["10.232.0.25", ip].sort());
    assert.ok(during.tags.includes("tcnp-mix"));
    assert.deepEqual(
      (await kernel.listAddresses(pod.path, "eth0")).filter((a) => !a.cidr.includes(":")).map((a) => a.cidr),
      [`${ip}/32`],
    );
    const del = await run(["ip", "netns", "exec", vm.name, cnicallerBinary, "del", "cni0", pod.path, "realmix01"], env);
    assert.equal(del.status, 0, del.stderr);
    // The address cools down on the VM's port (ipam.coolDownSeconds), even through a repeated DEL.
    const again = await run(
      ["ip", "netns", "exec", vm.name, cnicallerBinary, "del", "cni0", pod.path, "realmix01"],
      env,
    );
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(
      (await c.neutron.getPort(port.id)).fixed_ips.map((f) => f.ip_address).sort(),
      ["10.232.0.25", ip].sort(),
    );
    await new Promise((r) => setTimeout(r, 2100));
    const gc = await run(
      [
        "ip",
        "netns",
        "exec",
        vm.name,
        distBinary,
        "gc",
        "--min-age",
        "0",
        "--conf-dir",
        confDir,
        "--cache-dir",
        env.CNI_CACHEDIR,
      ],
      env,
    );
    assert.equal(gc.status, 0, `${gc.stdout}${gc.stderr}`);
    assert.deepEqual(
      (await c.neutron.getPort(port.id)).fixed_ips.map((f) => f.ip_address),
      ["10.232.0.25"],
      "once due, the address goes back to Neutron",
    );
    assert.deepEqual((await kernel.listLinks(vm.path)).map((l) => l.name).sort(), ["eth0", "lo"]);
  });
});
