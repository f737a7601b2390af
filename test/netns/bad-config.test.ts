// A corpus of wrong configurations, through the built executable in a VM namespace: each gives the
// right CNI error code and a message naming the cause, creates nothing, and prints no secret.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { e2eSkipReason } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";
import { MIX_NET, World } from "../helpers/world.js";

const skip = rootSkipReason("iptables-restore") ?? e2eSkipReason();
const SECRET = "s3cr3t-PA55word";

describe("wrong configurations are refused cleanly", { skip: skip ?? false }, () => {
  let w: World;
  before(async () => {
    w = await World.start({ vms: 1, home: "mix" });
  });
  after(async () => w?.stop());

  it("each of the corpus gives its code and names its cause, with nothing created and no secret printed", async () => {
    const vm = w.vms[0]!;
    const ok = w.mixConf(
      {},
      {
        openstackConf: {
          username: "admin",
          password: "secret",
          project: "admin",
          domain: "default",
          authUrl: w.authUrl,
        },
      },
    );
    const ipam = ok["ipam"] as Record<string, unknown>;
    const osc = ipam["openstackConf"] as Record<string, unknown>;
    const withIpam = (patch: Record<string, unknown>): Record<string, unknown> => ({
      ...ok,
      ipam: { ...ipam, ...patch },
    });
    const withOs = (patch: Record<string, unknown>, drop: string[] = []): Record<string, unknown> => {
      const o: Record<string, unknown> = { ...osc, password: SECRET, ...patch };
      for (const d of drop) delete o[d];
      return withIpam({ openstackConf: o });
    };
    const withNeutron = (patch: Record<string, unknown>): Record<string, unknown> =>
      withIpam({ neutronConf: { ...(ipam["neutronConf"] as object), ...patch } });
    const corpus: Array<[string, string | Record<string, unknown>, number, RegExp]> = [
      [
        "bad JSON",
        `{"cniVersion": "0.3.1", "name": "cni0", "password": "${SECRET}"`,
        6,
        /Cannot decode network configuration/,
      ],
      ["unsupported cniVersion", { ...ok, cniVersion: "0.2.0" }, 1, /"0\.2\.0"/],
      [
        "no cniVersion",
        (() => {
          const c = { ...ok };
          delete c["cniVersion"];
          return c;
        })(),
        1,
        /no cniVersion/,
      ],
      ["no name", { ...ok, name: "" }, 7, /name/],
      [
        "no ipam",
        (() => {
          const c = { ...ok };
          delete c["ipam"];
          return c;
        })(),
        7,
        /"ipam"/,
      ],
      ["ipam without type", withIpam({ type: undefined }), 7, /ipam\.type/],
      ["no openstackConf", withIpam({ openstackConf: undefined }), 7, /ipam\.openstackConf\.authUrl is required/],
      ["no authUrl", withOs({}, ["authUrl"]), 7, /ipam\.openstackConf\.authUrl is required/],
      [
        "authUrl not a URL",
        withOs({ authUrl: "keystone:5000" }),
        7,
        /ipam\.openstackConf\.authUrl "keystone:5000" is not an http/,
      ],
      ["no username", withOs({}, ["username"]), 7, /ipam\.openstackConf\.username is required/],
      ["no password", withOs({}, ["password"]), 7, /ipam\.openstackConf\.password is required/],
      ["no project", withOs({}, ["project"]), 7, /ipam\.openstackConf\.project is required/],
      ["no domain", withOs({}, ["domain"]), 7, /ipam\.openstackConf\.domain is required/],
      [
        "password file missing",
        withOs({ passwordFile: "/nonexistent/pw" }, ["password"]),
        7,
        /ipam\.openstackConf\.passwordFile "\/nonexistent\/pw": ENOENT/,
      ],
      ["bad interface", withOs({ interface: "private" }), 7, /ipam\.openstackConf\.interface/],
      [
        "unknown clouds.yaml cloud",
        withOs({ cloud: "nope", cloudsYaml: "/nonexistent/clouds.yaml" }, ["authUrl"]),
        7,
        /ipam\.openstackConf\.cloud "nope"/,
      ],
      ["no neutronConf", withIpam({ neutronConf: undefined }), 7, /ipam\.neutronConf is required/],
      [
        "unknown mode",
        withNeutron({ mode: "bridge" }),
        7,
        /ipam\.neutronConf\.mode must be "mix" or "eni" \(got "bridge"\)/,
      ],
      ["no networks", withNeutron({ networks: [] }), 7, /ipam\.neutronConf\.networks/],
      [
        "network not an ID",
        withNeutron({ networks: ["pods"] }),
        7,
        /ipam\.neutronConf\.networks\[0\] "pods" is not an ID/,
      ],
      [
        "network this VM is not on",
        withNeutron({ networks: ["0e000000-0000-4000-8000-000000000000"] }),
        7,
        /Cannot find this VM's port on ipam\.neutronConf\.networks/,
      ],
      ["subnet not an ID", withNeutron({ subnets: ["x"] }), 7, /ipam\.neutronConf\.subnets\[0\]/],
      [
        "bad route dst",
        withIpam({ routes: [{ dst: "default" }] }),
        7,
        /ipam\.routes\[0\]\.dst "default" is not a CIDR/,
      ],
      ["routes not a list", withIpam({ routes: { dst: "0.0.0.0/0" } }), 7, /ipam\.routes must be a list/],
      [
        "bad route gw",
        withIpam({ routes: [{ dst: "0.0.0.0/0", gw: "router" }] }),
        7,
        /ipam\.routes\[0\]\.gw "router" is not an IP/,
      ],
      ["bad serverId", withIpam({ serverId: "vm1" }), 7, /ipam\.serverId "vm1"/],
      ["bad timeouts", withIpam({ timeouts: { api: -1 } }), 7, /ipam\.timeouts\.api must be a positive number/],
      ["bad mtu", { ...ok, mtu: 12 }, 7, /"mtu" must be an integer/],
      [
        "wrong password",
        withOs({}),
        7,
        /POST \/v3\/auth\/tokens \(identity\) failed: 401 Unauthorized: The request you have made requires authentication\./,
      ],
      [
        "unreachable authUrl",
        withOs({ authUrl: `http://${w.topo.serviceIp}:5999/v3` }),
        11,
        /Cannot POST http:\/\/198\.18\.0\.2:5999\/v3\/auth\/tokens: ECONNREFUSED/,
      ],
      // The delegated IPAM is a plugin name looked up in CNI_PATH, never a path (CVE-2021-20206's class).
      [
        "ipam.type is a path",
        withIpam({ type: "../../tmp/x" }),
        7,
        /ipam\.type "\.\.\/\.\.\/tmp\/x" must be a plugin name, not a path/,
      ],
      ["ipam.type is absolute", withIpam({ type: "/tmp/x" }), 7, /ipam\.type "\/tmp\/x" must be a plugin name/],
      // A malformed authUrl with credentials in it: named, but without them.
      [
        "authUrl with credentials",
        withOs({ authUrl: `htps://admin:${SECRET}@keystone/v3` }),
        7,
        /authUrl "htps:\/\/keystone\/v3" is not an http\(s\) URL/,
      ],
      [
        "caCert missing",
        withOs({ caCert: "/nonexistent/ca.pem" }),
        7,
        /Cannot read ipam\.openstackConf\.caCert "\/nonexistent\/ca\.pem": ENOENT/,
      ],
    ];
    assert.ok(corpus.length >= 20);
    const k = w.kernel;
    const vmState = async (): Promise<string> =>
      JSON.stringify([
        await k.listLinks(vm.ns),
        await k.listRoutes(vm.ns, "all"),
        await k.listNeighbours(vm.ns, { proxy: true }),
        await k.listAddresses(vm.ns),
      ]);
    const before = {
      vm: await vmState(),
      port: w.vmPort(vm, MIX_NET).ips,
      ports: Object.keys(w.em.world.ports).length,
    };
    const log = path.join(vm.dir, "tcnp.log");
    for (const [what, conf, code, msg] of corpus) {
      const pod = await w.newPod("bad");
      const r = await w.plugin(
        vm,
        "veth-route",
        { CNI_COMMAND: "ADD", CNI_CONTAINERID: pod.id, CNI_NETNS: pod.path, CNI_IFNAME: "eth0" },
        typeof conf === "string" ? conf : JSON.stringify(conf),
      );
      assert.notEqual(r.status, 0, `${what}: exit status`);
      assert.equal(r.json?.["code"], code, `${what}: ${r.stdout}`);
      assert.match(String(r.json?.["details"]), msg, what);
      assert.equal(`${r.stdout}${r.stderr}`.includes(SECRET), false, `${what}: a secret was printed`);
      assert.deepEqual(
        (await k.listLinks(pod.path)).map((l) => l.name),
        ["lo"],
        `${what}: nothing in the pod`,
      );
      await w.removePodNetns(pod.name);
    }
    assert.equal(await vmState(), before.vm, "the VM is as it was");
    assert.deepEqual(w.vmPort(vm, MIX_NET).ips, before.port, "the VM's port is as it was");
    assert.equal(Object.keys(w.em.world.ports).length, before.ports, "no Neutron port was created");
    assert.equal(fs.readFileSync(log, "utf8").includes(SECRET), false, "no secret in the log file");
  });

  it("an over-long container ID is refused with code 4 and nothing made", async () => {
    const vm = w.vms[0]!;
    const pod = await w.newPod("long");
    const conf = w.mixConf();
    const r = await w.plugin(
      vm,
      "veth-route",
      { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c".repeat(300), CNI_NETNS: pod.path, CNI_IFNAME: "eth0" },
      JSON.stringify(conf),
    );
    assert.equal(r.json?.["code"], 4, r.stdout);
    assert.match(String(r.json?.["details"]), /CNI_CONTAINERID is 300 characters long; at most 200/);
    assert.deepEqual(
      (await w.kernel.listLinks(pod.path)).map((l) => l.name),
      ["lo"],
    );
    await w.removePodNetns(pod.name);
  });

  it("DEL with a prevResult it cannot read still releases the pod (DEL is best effort)", async () => {
    const vm = w.vms[0]!;
    const pod = await w.newPod("garbage");
    const conf = w.mixConf();
    const env = { CNI_CONTAINERID: pod.id, CNI_NETNS: pod.path, CNI_IFNAME: "eth0" };
    const before = w.vmPort(vm, MIX_NET).ips;
    const add = await w.plugin(vm, "veth-route", { ...env, CNI_COMMAND: "ADD" }, JSON.stringify(conf));
    assert.equal(add.status, 0, add.stdout);
    const del = await w.plugin(
      vm,
      "veth-route",
      { ...env, CNI_COMMAND: "DEL" },
      JSON.stringify({ ...conf, prevResult: { ips: "garbage", interfaces: 7 } }),
    );
    assert.equal(del.status, 0, del.stdout);
    assert.deepEqual(w.vmPort(vm, MIX_NET).ips, before, "the address went back");
    assert.deepEqual(
      (await w.kernel.listLinks(vm.ns)).filter((l) => l.name.startsWith("tcnp")),
      [],
      "the veth is gone",
    );
    await w.removePodNetns(pod.name);
  });
});
