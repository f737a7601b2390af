// The main job, from the built executable: `tcnp lab up` builds the small cloud and every path of the
// connectivity matrix works; `tcnp doctor` names each injected fault (and calls a healthy pod
// healthy); `tcnp lab down` leaves no namespace, link, process or file — also after a failed `up`.
import { describe, it, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { isOurs, type LabState } from "../../src/lab/state.js";
import { cidrContains, parseCidr, parseIp } from "../../src/net/ip.js";
import { hostVethName } from "../../src/net/names.js";
import { nodeFetch } from "../../src/openstack/node-fetch.js";
import { GATEWAY } from "../../src/plugins/veth-route/plan.js";
import { distBinary, e2eSkipReason, repoRoot } from "../helpers/cni.js";
import { rootSkipReason } from "../helpers/root.js";

const PREFIX = "tcnp-lab-";
const skip = rootSkipReason("iptables-restore", "nc", "ping") ?? e2eSkipReason();

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function tcnp(args: string[], env: Record<string, string> = {}): Ran {
  const r = spawnSync(distBinary, args, { encoding: "utf8", env: { ...process.env, ...env }, timeout: 300_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function sh(argv: string[]): Ran {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const labNamespaces = (): string[] =>
  sh(["ip", "netns", "list"])
    .stdout.split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => n.startsWith(PREFIX));
const hostLinks = (): string[] =>
  sh(["ip", "-o", "link", "show"])
    .stdout.split("\n")
    .map((l) => l.split(":")[1]?.trim() ?? "")
    .filter((n) => n !== "")
    .sort();

interface Finding {
  severity: string;
  code: string;
  message: string;
}

function doctor(dir: string, pod: string): { code: number; healthy: boolean; findings: Finding[]; errors: string[] } {
  const r = tcnp(["lab", "doctor", pod, "--json", "--dir", dir]);
  assert.ok(r.code === 0 || r.code === 1, `doctor ${pod}: exit ${r.code}: ${r.stderr}`);
  const rep = JSON.parse(r.stdout) as { healthy: boolean; findings: Finding[] };
  return {
    code: r.code,
    healthy: rep.healthy,
    findings: rep.findings,
    errors: rep.findings.filter((f) => f.severity === "error").map((f) => f.code),
  };
}

/** Everything a lab leaves behind must be gone: its namespaces, host links, processes and directory. */
function assertNothingLeft(dir: string, pids: LabState["processes"], linksBefore: string[]): void {
  assert.deepEqual(labNamespaces(), [], "no lab namespace is left");
  assert.deepEqual(hostLinks(), linksBefore, "the host's links are as before");
  for (const p of pids) assert.equal(isOurs(p), false, `process ${p.name} (pid ${p.pid}) has ended`);
  assert.equal(fs.existsSync(dir), false, `${dir} is removed`);
}

describe("tcnp lab and tcnp doctor (the built executable, as root)", { skip: skip ?? false }, () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "tcnp-labtest-"));
  const dir = path.join(base, "lab");
  let linksBefore: string[] = [];
  let lab: LabState;
  const readState = (): LabState => JSON.parse(fs.readFileSync(path.join(dir, "lab.json"), "utf8")) as LabState;
  const pod = (name: string): LabState["pods"][number] => lab.pods.find((p) => p.podName === name)!;
  const vmNs = (name: string): string => lab.vms.find((v) => v.name === pod(name).vm)!.ns;

  before(() => {
    assert.deepEqual(labNamespaces(), [], "no lab may be up before this test (tcnp lab down)");
    linksBefore = hostLinks();
  });
  after(() => {
    // Whatever happened above: take it down.
    tcnp(["lab", "down", "--dir", dir]);
    for (const n of labNamespaces()) sh(["ip", "netns", "del", n]);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it("the README's lab command (scripts/lab.sh) builds the cloud and every path of the matrix works", () => {
    const run = spawnSync(path.join(repoRoot, "scripts", "lab.sh"), ["--dir", dir], {
      encoding: "utf8",
      timeout: 600_000,
    });
    const r: Ran = { code: run.status ?? -1, stdout: run.stdout, stderr: run.stderr };
    assert.equal(r.code, 0, `lab up failed:\n${r.stdout}\n${r.stderr}`);
    lab = readState();
    assert.equal(lab.status, "up");
    assert.equal(lab.pods.length, 6);
    assert.match(lab.pods.find((p) => p.podName === "vm1-mix-a")?.floatingIp ?? "", /^203\.0\.113\.1\d\d$/);
    const rows = r.stdout.split("\n").filter((l) => /^\s*(✓|✗)/.test(l));
    assert.equal(rows.length, 16, `16 matrix rows:\n${r.stdout}`);
    assert.equal(rows.filter((l) => l.trim().startsWith("✗")).length, 0, `every path works:\n${r.stdout}`);
    assert.match(r.stdout, /16 of 16 paths work/);
    assert.doesNotMatch(r.stdout + r.stderr, /\bsecret\b/, "the cloud's password is never printed");
    for (const path of [
      "pod → pod, other VM (mix)",
      "pod → Service (eni)",
      "outside → pod via router (mix)",
      "outside → NodePort → local pod (eni)",
      "outside → pod via floating IP",
    ])
      assert.ok(r.stdout.includes(path), path);
  });

  it("lab status exits 0 while the lab is up", () => {
    const r = tcnp(["lab", "status", "--dir", dir]);
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /pod default\/vm2-eni-a\s+eni\s+10\.10\.20\./);
    // A node agent per VM, its mix pool warm (the lab's mix pods came from it).
    for (const vm of ["vm1", "vm2"]) {
      assert.match(r.stdout, new RegExp(`process agent ${vm}: pid \\d+ running`));
      assert.match(r.stdout, new RegExp(`${vm} mix pool: [1-9]\\d* free \\[10\\.10\\.10\\.`));
      // its eni pool is called so (it was labelled a mix pool), its ports on the eni network
      assert.match(r.stdout, new RegExp(`${vm} eni pool: \\d+ free \\[(10\\.10\\.20\\.\\d+ ?)*\\]`));
    }
    // Another directory holds no lab: down there touches nothing of this one.
    const other = tcnp(["lab", "down", "--dir", path.join(base, "elsewhere")]);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /no lab is recorded/);
    assert.equal(labNamespaces().length, 12);
    assert.equal(tcnp(["lab", "status", "--dir", dir]).code, 0);
  });

  // Issue 22 item 8: each agent's socket, metrics and the environment to reach it by hand; an agent
  // that died is named with the one command that starts it again; the lab's doctor sees the agent.
  it("lab status tells where each agent is and how to reach it; a dead agent is restarted by one command", async () => {
    const j = JSON.parse(tcnp(["lab", "status", "--json", "--dir", dir]).stdout) as {
      up: boolean;
      agents: Array<{
        vm: string;
        pid: number;
        running: boolean;
        socket: string;
        pools: Array<{ mode: string }>;
        env: Record<string, string>;
      }>;
    };
    assert.equal(j.up, true);
    const vm1 = j.agents.find((a) => a.vm === "vm1")!;
    assert.ok(vm1.running && vm1.socket.endsWith("agent.sock"));
    assert.deepEqual(vm1.pools.map((p) => p.mode).sort(), ["eni", "mix"]);
    const text = tcnp(["lab", "status", "--dir", dir]).stdout;
    assert.match(text, /vm1 node agent: socket \S+agent\.sock, metrics http:\/\/127\.0\.0\.1:9798\/metrics/);
    assert.match(
      text,
      /by hand: ip netns exec tcnp-lab-vm1 env TCNP_AGENT_SOCKET=\S+ TCNP_STATE_DIR=\S+ .* tcnp agent status/,
    );
    const d = tcnp(["lab", "doctor", "vm1-mix-a", "--dir", dir]);
    assert.match(d.stdout, /agent/i, "the lab's doctor reaches the VM's agent");
    process.kill(vm1.pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    const down = tcnp(["lab", "status", "--dir", dir]);
    assert.notEqual(down.code, 0);
    assert.match(down.stdout, /vm1 node agent: NOT RUNNING .*Start it again: tcnp lab agent-restart vm1 --dir /);
    const again = tcnp(["lab", "agent-restart", "--dir", dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /vm1: agent started again/);
    let up = 1;
    for (let i = 0; i < 100 && up !== 0; i++) {
      up = tcnp(["lab", "status", "--dir", dir]).code;
      if (up !== 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(up, 0, "the lab is whole again");
  });

  it("doctor reports healthy pods as healthy, found by --pod, --container and --netns", () => {
    for (const name of ["vm1-mix-a", "vm1-eni-a", "vm2-mix-b"]) {
      const d = doctor(dir, name);
      assert.deepEqual(d.errors, [], `${name}: ${JSON.stringify(d.findings)}`);
      assert.equal(d.healthy, true);
      assert.equal(d.code, 0);
    }
    const p = pod("vm1-eni-a");
    const vm = lab.vms.find((v) => v.name === p.vm)!;
    const env = {
      CNI_CACHEDIR: path.join(vm.dir, "cache"),
      TCNP_STATE_DIR: path.join(vm.dir, "state"),
      TCNP_LOCK_DIR: path.join(vm.dir, "locks"),
    };
    for (const sel of [
      ["--container", p.containerId],
      ["--netns", `/var/run/netns/${p.ns}`],
    ]) {
      const r = spawnSync("ip", ["netns", "exec", vm.ns, distBinary, "doctor", ...sel, "--json"], {
        encoding: "utf8",
        env: { ...process.env, ...env },
      });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const rep = JSON.parse(r.stdout) as { healthy: boolean; pod: { ip?: string } };
      assert.equal(rep.healthy, true);
      assert.equal(rep.pod.ip, p.ip);
    }
    const text = tcnp(["lab", "doctor", "vm1-mix-a", "--dir", dir]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /✓ healthy/);
    assert.equal(tcnp(["lab", "doctor", "no-such-pod", "--dir", dir]).code, 2);
  });

  it("doctor names a missing host route", () => {
    const p = pod("vm1-mix-a");
    const veth = hostVethName(p.containerId, "eth0");
    assert.equal(sh(["ip", "-n", vmNs(p.podName), "route", "del", `${p.ip!}/32`, "dev", veth]).code, 0);
    const d = doctor(dir, p.podName);
    assert.equal(d.code, 1);
    assert.deepEqual(d.errors, ["host-route-missing"]);
    assert.match(
      d.findings.find((f) => f.code === "host-route-missing")!.message,
      new RegExp(
        `route ${p.ip!.replace(/\./g, "\\.")}/32 dev \\S+ is missing on the host: nothing the VM forwards to the pod reaches it`,
      ),
    );
    assert.equal(sh(["ip", "-n", vmNs(p.podName), "route", "add", `${p.ip!}/32`, "dev", veth]).code, 0);
    assert.equal(doctor(dir, p.podName).healthy, true, "healthy again once repaired");
  });

  // Issue 13 items 5 and 9 as a live node meets them: the pod's proxy-ARP entry on the uplink gone
  // (another attachment's repeated DEL took it), and the VM's anti-spoofing filter on its veth off.
  it("doctor names a taken proxy-ARP entry and a disabled anti-spoofing filter", () => {
    const p = pod("vm1-mix-a");
    const ns = vmNs(p.podName);
    const veth = hostVethName(p.containerId, "eth0");
    const entry = sh(["ip", "-n", ns, "neigh", "show", "proxy", p.ip!]).stdout.trim();
    const dev = /dev (\S+)/.exec(entry)?.[1];
    assert.ok(dev !== undefined, `the VM answers ARP for ${p.ip!} by proxy: ${entry}`);
    assert.equal(sh(["ip", "-n", ns, "neigh", "del", "proxy", p.ip!, "dev", dev]).code, 0);
    const taken = doctor(dir, p.podName);
    assert.ok(
      taken.findings.some((f) => f.code === "proxy-arp-missing"),
      `doctor names the missing proxy entry: ${JSON.stringify(taken.findings)}`,
    );
    assert.equal(sh(["ip", "-n", ns, "neigh", "add", "proxy", p.ip!, "dev", dev]).code, 0);

    const rp = `/proc/sys/net/ipv4/conf/${veth}/rp_filter`;
    const strict = sh(["ip", "netns", "exec", ns, "cat", rp]).stdout.trim();
    assert.equal(sh(["ip", "netns", "exec", ns, "sh", "-c", `echo 0 > ${rp}`]).code, 0);
    const open = doctor(dir, p.podName);
    assert.equal(open.code, 1);
    assert.deepEqual(open.errors, ["anti-spoofing-wrong"]);
    assert.match(
      open.findings.find((f) => f.code === "anti-spoofing-wrong")!.message,
      /can send with another pod's address/,
    );
    assert.equal(sh(["ip", "netns", "exec", ns, "sh", "-c", `echo ${strict} > ${rp}`]).code, 0);
    assert.equal(doctor(dir, p.podName).healthy, true, "healthy again once repaired");
  });

  it("doctor names a missing pod default route", () => {
    const p = pod("vm1-mix-b");
    assert.equal(sh(["ip", "-n", p.ns, "route", "del", "default"]).code, 0);
    const d = doctor(dir, p.podName);
    assert.equal(d.code, 1);
    assert.deepEqual(d.errors, ["pod-default-route-missing"]);
    assert.equal(sh(["ip", "-n", p.ns, "route", "add", "default", "via", GATEWAY, "dev", "eth0"]).code, 0);
    assert.equal(doctor(dir, p.podName).healthy, true);
  });

  it("doctor names a missing pod default route in eni mode", () => {
    const p = pod("vm2-eni-a");
    const before = sh(["ip", "-n", p.ns, "route", "show", "default"]).stdout.trim();
    assert.equal(sh(["ip", "-n", p.ns, "route", "del", "default"]).code, 0);
    const d = doctor(dir, p.podName);
    assert.deepEqual(d.errors, ["pod-default-route-missing"]);
    assert.equal(sh(["ip", "-n", p.ns, "route", "add", ...before.split(/\s+/)]).code, 0);
    assert.equal(doctor(dir, p.podName).healthy, true);
  });

  it("doctor names a missing router route (removed from Neutron while the controller is paused)", async () => {
    const p = pod("vm2-mix-a");
    const controller = lab.processes.find((x) => x.name === "route-controller")!;
    assert.ok(isOurs(controller));
    const neutron = await cloudApi(lab);
    process.kill(controller.pid, "SIGSTOP");
    try {
      const router = (await neutron("GET", `/network/v2.0/routers/${LAB_ROUTER}`)).router as {
        routes: Array<{ destination: string; nexthop: string }>;
      };
      // The controller may have aggregated the pod into a block: remove whatever covers it.
      const routes = router.routes.filter((r) => !cidrContains(parseCidr(r.destination), parseIp(p.ip!)));
      assert.equal(routes.length, router.routes.length - 1, `the router held a route to ${p.ip!}`);
      await neutron("PUT", `/network/v2.0/routers/${LAB_ROUTER}`, { router: { routes } });
      const d = doctor(dir, p.podName);
      assert.equal(d.code, 1);
      assert.deepEqual(d.errors, ["router-route-missing"]);
    } finally {
      process.kill(controller.pid, "SIGCONT");
    }
    // The controller puts it back within its interval (1 s in the lab).
    const end = Date.now() + 15_000;
    while (!doctor(dir, p.podName).healthy) {
      assert.ok(Date.now() < end, "the controller restored the route");
      await new Promise((r) => setTimeout(r, 500));
    }
  });

  it("doctor names a pod address removed from the Neutron port", async () => {
    const p = pod("vm2-mix-b");
    const neutron = await cloudApi(lab);
    const vm = lab.vms.find((v) => v.name === p.vm)!;
    const port = (
      (await neutron("GET", `/network/v2.0/ports?device_id=${vm.serverId}`)).ports as Array<{
        id: string;
        fixed_ips: Array<{ ip_address: string }>;
      }>
    )[0]!;
    await neutron("PUT", `/network/v2.0/ports/${port.id}`, {
      port: { fixed_ips: port.fixed_ips.filter((f) => f.ip_address !== p.ip) },
    });
    const d = doctor(dir, p.podName);
    assert.equal(d.code, 1);
    assert.ok(d.errors.includes("address-not-on-port"), JSON.stringify(d.findings));
    assert.match(
      d.findings.find((f) => f.code === "address-not-on-port")!.message,
      new RegExp(`${p.ip!.replace(/\./g, "\\.")} is no longer on Neutron port ${port.id}`),
    );
  });

  it("doctor names a host veth deleted on the VM", () => {
    const p = pod("vm1-eni-a");
    const veth = hostVethName(p.containerId, "veth0");
    assert.equal(sh(["ip", "-n", vmNs(p.podName), "link", "del", veth]).code, 0);
    const d = doctor(dir, p.podName);
    assert.equal(d.code, 1);
    assert.ok(d.errors.includes("host-veth-missing"), JSON.stringify(d.findings));
    assert.match(d.findings.find((f) => f.code === "host-veth-missing")!.message, new RegExp(veth));
    const m = pod("vm2-mix-a");
    assert.equal(sh(["ip", "-n", vmNs(m.podName), "link", "del", hostVethName(m.containerId, "eth0")]).code, 0);
    assert.ok(doctor(dir, m.podName).errors.includes("host-veth-missing"));
  });

  it("lab down removes every namespace, link, process and file; status then says none is up", () => {
    const r = tcnp(["lab", "down", "--dir", dir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assertNothingLeft(dir, lab.processes, linksBefore);
    assert.notEqual(tcnp(["lab", "status", "--dir", dir]).code, 0);
  });

  it("lab down also cleans up after a failed up", () => {
    const r = tcnp(["lab", "up", "--dir", dir], { TCNP_CNICALLER: "/bin/false" });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /lab up failed: ADD of vm1-mix-a \(mix\) failed/);
    const s = readState();
    assert.equal(s.status, "failed");
    assert.ok(labNamespaces().length > 0, "the failed up had built namespaces");
    assert.equal(tcnp(["lab", "status", "--dir", dir]).code, 1);
    const d = tcnp(["lab", "down", "--dir", dir]);
    assert.equal(d.code, 0, d.stdout + d.stderr);
    assertNothingLeft(dir, s.processes, linksBefore);
  });

  it("lab up refuses a directory holding other files, and lab down leaves such a directory alone", () => {
    fs.mkdirSync(path.join(base, "other"));
    fs.writeFileSync(path.join(base, "other", "keep.txt"), "mine");
    const r = tcnp(["lab", "up", "--dir", path.join(base, "other")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not empty/);
    assert.equal(tcnp(["lab", "down", "--dir", path.join(base, "other")]).code, 0);
    assert.equal(fs.readFileSync(path.join(base, "other", "keep.txt"), "utf8"), "mine");
    assert.deepEqual(labNamespaces(), []);
  });
});

const LAB_ROUTER = "7c000000-0000-4000-8000-000000000001";

/** The lab cloud's API over its unix socket (as admin), for injecting faults into Neutron. */
async function cloudApi(
  lab: LabState,
): Promise<(method: string, p: string, body?: unknown) => Promise<Record<string, unknown>>> {
  const f = nodeFetch({ timeoutMs: 5000 });
  const base = `http+unix://${encodeURIComponent(lab.cloudSocket!)}`;
  const auth = await f({
    method: "POST",
    url: `${base}/v3/auth/tokens`,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      auth: {
        identity: {
          methods: ["password"],
          password: { user: { name: "admin", domain: { id: "default" }, password: "secret" } },
        },
        scope: { project: { name: "admin", domain: { id: "default" } } },
      },
    }),
  });
  assert.equal(auth.status, 201);
  const token = auth.headers["x-subject-token"]!;
  return async (method, p, body) => {
    const r = await f({
      method,
      url: `${base}${p}`,
      headers: { "x-auth-token": token, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    assert.ok(r.status < 300, `${method} ${p}: ${r.status} ${r.body}`);
    return JSON.parse(r.body) as Record<string, unknown>;
  };
}
