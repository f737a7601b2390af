// The Kubernetes add-on against a real control plane (etcd + kube-apiserver 1.20.2 built from
// Debian's source, RBAC on): the shipped manifests apply server-side with kubectl, and the route
// controller runs with its ServiceAccount's token under the shipped roles: Lease election between
// two replicas and failover, a pod watch that wakes a reconcile, events on pods left without a
// route, and a clear refusal to start when a verb it needs is removed from its ClusterRole.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseControllerConfig, type ControllerConfig } from "../../src/controller/config.js";
import { startController, type Controller } from "../../src/controller/run.js";
import { parseNetConf } from "../../src/cni/netconf.js";
import { parseIpamConfig } from "../../src/ipam/config.js";
import { nullLogger } from "../../src/log/logger.js";
import { fileSources } from "../../src/openstack/credentials.js";
import { repoRoot } from "../helpers/cni.js";
import { controlPlaneSkipReason, startControlPlane, type ControlPlane } from "../helpers/kube-real.js";
import { kubeControllerConfig, NET, ROUTER, routeWorld, type RouteWorld } from "../helpers/route-world.js";
import { ENI_TAG, nodeTag } from "../../src/ipam/tags.js";

const skip = controlPlaneSkipReason();
interface PodOwner {
  metadata: { generation: number };
  spec: {
    template: {
      metadata: { annotations?: Record<string, string> };
      spec: {
        volumes: Array<{ configMap?: { name: string }; secret?: { secretName: string } }>;
        containers: Array<{ image: string; ports?: Array<{ containerPort: number; hostPort?: number }> }>;
      };
    };
  };
}
const DEPLOY = path.join(repoRoot, "deploy", "kubernetes", "base");
const EXAMPLES = path.join(repoRoot, "deploy", "kubernetes", "examples");
const NS = "tcnp-system";
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe(
  "the Kubernetes add-on on a real control plane (kube-apiserver 1.20.2, etcd 3.4, RBAC)",
  { skip: skip ?? false },
  () => {
    let cp: ControlPlane;
    let w: RouteWorld;
    const running: Controller[] = [];
    before(async () => {
      cp = await startControlPlane();
      w = await routeWorld({ vms: 2 });
    });
    after(async () => {
      for (const c of running) await c.stop();
      await cp?.stop();
    });

    const controllerConfig = (
      tokenFile: string,
      identity: string | undefined,
      over: Partial<ControllerConfig> = {},
    ): ControllerConfig =>
      kubeControllerConfig(
        {
          apiUrl: cp.url,
          tokenFile,
          caCert: cp.caFile,
          leaseName: "vrouter-route-controller",
          leaseNamespace: NS,
          leaseDurationMs: 3_000,
          renewMs: 1_000,
          events: true,
          watchPods: true,
          watchNodes: true,
          ...(identity === undefined ? {} : { identity }),
        },
        over,
      );
    const start = async (cfg: ControllerConfig): Promise<Controller> => {
      const c = await startController(cfg, { env: {}, log: nullLogger, fetch: w.em.fetch });
      running.push(c);
      return c;
    };
    const holder = async (): Promise<string | undefined> =>
      cp
        .api<{ spec: { holderIdentity?: string } }>(
          "GET",
          `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/vrouter-route-controller`,
        )
        .then(
          (l) => l.spec.holderIdentity,
          () => undefined,
        );

    /** The object a generator made (its name carries a hash of its content): the one the DaemonSet or Deployment names. */
    function generated<T>(kind: "configmap" | "secret", name: string): T {
      const ds = JSON.parse(cp.kubectl(["get", "-n", NS, "daemonset/tcnp-node", "-o", "json"])) as PodOwner;
      const dep = JSON.parse(
        cp.kubectl(["get", "-n", NS, "deployment/vrouter-route-controller", "-o", "json"]),
      ) as PodOwner;
      const names = [ds, dep].flatMap((o) =>
        o.spec.template.spec.volumes.map((v) => (kind === "configmap" ? v.configMap?.name : v.secret?.secretName)),
      );
      const full = names.find((n) => n !== undefined && new RegExp(`^${name}-[a-z0-9]{10}$`).test(n));
      assert.ok(full !== undefined, `no ${kind} ${name}-<hash> among ${JSON.stringify(names)}`);
      return JSON.parse(cp.kubectl(["get", "-n", NS, `${kind}/${full}`, "-o", "json"])) as T;
    }

    it("the manifests apply server-side with kubectl, and their configurations are valid for tcnp", () => {
      const out = cp.kubectl(["apply", "--server-side", "-k", DEPLOY]);
      for (const o of [
        "namespace/tcnp-system",
        "serviceaccount/tcnp-node",
        "serviceaccount/vrouter-route-controller",
        "clusterrole.rbac.authorization.k8s.io/vrouter-route-controller",
        "role.rbac.authorization.k8s.io/vrouter-route-controller-lease",
        "secret/tcnp-node-cloud-*",
        "secret/tcnp-controller-cloud-*",
        "configmap/tcnp-config-*",
        "daemonset.apps/tcnp-node",
        "deployment.apps/vrouter-route-controller",
      ])
        assert.match(
          out,
          new RegExp(`^${o.replace(/\./g, "\\.").replace("*", "[a-z0-9]{10}")} serverside-applied$`, "m"),
          out,
        );
      // Applying again changes nothing and conflicts with nothing (an upgrade is the same command).
      cp.kubectl(["apply", "--server-side", "-k", DEPLOY]);
      const ds = JSON.parse(cp.kubectl(["get", "-n", NS, "daemonset/tcnp-node", "-o", "json"])) as {
        spec: { template: { spec: { hostNetwork: boolean; initContainers: Array<{ command: string[] }> } } };
      };
      assert.equal(ds.spec.template.spec.hostNetwork, true);
      assert.ok(ds.spec.template.spec.initContainers[0]!.command.includes("install"));
      // The ConfigMap's network configuration and controller configuration parse as tcnp reads them.
      const cm = generated<{ data: Record<string, string> }>("configmap", "tcnp-config");
      const conf = parseNetConf(cm.data["10-tcnp.conflist"]!, "ADD");
      assert.equal(conf.name, "tcnp");
      assert.ok(!cm.data["10-tcnp.conflist"]!.includes("password"), "no password in the network configuration");
      const secretDir = fs.mkdtempSync(path.join(cp.dir, "secret-"));
      const secret = generated<{ data: Record<string, string> }>("secret", "tcnp-controller-cloud");
      fs.writeFileSync(path.join(secretDir, "clouds.yaml"), Buffer.from(secret.data["clouds.yaml"]!, "base64"));
      const text = cm.data["controller.yaml"]!.replace(
        "/etc/tcnp-secret/clouds.yaml",
        path.join(secretDir, "clouds.yaml"),
      );
      const cc = parseControllerConfig(text, "controller.yaml", fileSources({}));
      assert.equal(cc.kubernetes.leaseNamespace, NS);
    });

    it("two replicas with the ServiceAccount's token: one leads the Lease, the other takes over when it stops", async () => {
      const token = await cp.serviceAccountToken(NS, "vrouter-route-controller");
      // The default identity, as the Deployment's replicas get it; both run in this process on this
      // host, as two host-network replicas on one node share the hostname (and each is PID 1).
      const a = await start(controllerConfig(token, undefined));
      const b = await start(controllerConfig(token, undefined));
      const first = await until("a leader", holder);
      assert.match(first, new RegExp(`^${os.hostname().replace(/\./g, "\\.")}_[0-9a-f-]{36}$`));
      await sleep(2_500);
      assert.equal(await holder(), first, "the leader renews; the other does not take over");
      const leads = [await a.step(), await b.step()].map((r) => r !== undefined);
      assert.deepEqual(leads.filter(Boolean).length, 1, `exactly one replica reconciles: ${JSON.stringify(leads)}`);
      const [leader, other] = leads[0] === true ? [a, b] : [b, a];
      await leader.stop();
      const stoppedAt = Date.now();
      running.splice(running.indexOf(leader), 1);
      const next = await until("the other replica to take over", async () => {
        const h = await holder();
        return h !== undefined && h !== first ? h : undefined;
      });
      assert.notEqual(next, first);
      await until("the new leader's reconcile on taking over (not an hour later at its interval)", async () =>
        (other.last?.at ?? 0) > stoppedAt && other.last?.ok === true ? true : undefined,
      );
    });

    it("a pod's address in the watch wakes a reconcile; a pod left without a route gets an event", async () => {
      // Pods as the API server keeps them (no kubelet here: the test writes their status).
      await cp
        .api("POST", "/api/v1/namespaces/default/serviceaccounts", {
          metadata: { name: "default" },
        })
        .catch(() => undefined);
      const mkPod = async (name: string, ip: string): Promise<void> => {
        await cp.api("POST", "/api/v1/namespaces/default/pods", {
          metadata: { name },
          spec: { automountServiceAccountToken: false, containers: [{ name: "c", image: "localhost/none" }] },
        });
        await cp.api(
          "PATCH",
          `/api/v1/namespaces/default/pods/${name}/status`,
          { status: { podIP: ip, podIPs: [{ ip }] } },
          "application/merge-patch+json",
        );
      };
      const routes = (): string[] => w.em.world.routers[ROUTER]!.routes.map((r) => r.destination);
      const [ip1] = await w.addPods(0, 1);
      await mkPod("web-0", ip1!);
      await until("the route after the pod's address appeared in the watch (interval 1 h)", async () =>
        routes().includes(`${ip1!}/32`) ? true : undefined,
      );

      // The router holds one route at most: the second pod is left without one, and told so.
      for (const c of running) await c.stop();
      running.length = 0;
      const token = await cp.serviceAccountToken(NS, "vrouter-route-controller");
      await start(controllerConfig(token, "replica-c", { routeLimit: 1 }));
      const [ip2] = await w.addPods(1, 1);
      await mkPod("web-1", ip2!);
      const ev = await until(
        "a NoRouterRoute event",
        async () => {
          const list = await cp.api<{
            items: Array<{ reason: string; involvedObject: { name: string }; message: string }>;
          }>("GET", "/api/v1/namespaces/default/events");
          return list.items.find((e) => e.reason === "NoRouterRoute");
        },
        30_000,
      );
      assert.ok(["web-0", "web-1"].includes(ev.involvedObject.name));
      assert.match(ev.message, /No Neutron router route to 10\.10\.10\.\d+/);
    });

    it("a verb removed from the shipped ClusterRole: the controller refuses to start and names it", async () => {
      for (const c of running) await c.stop();
      running.length = 0;
      const role = JSON.parse(cp.kubectl(["get", "clusterrole/vrouter-route-controller", "-o", "json"])) as {
        rules: Array<{ resources: string[]; verbs: string[] }>;
      };
      const i = role.rules.findIndex((r) => r.resources.includes("pods"));
      cp.kubectl([
        "patch",
        "clusterrole/vrouter-route-controller",
        "--type=json",
        "-p",
        JSON.stringify([{ op: "replace", path: `/rules/${i}/verbs`, value: ["list"] }]),
      ]);
      try {
        const token = await cp.serviceAccountToken(NS, "vrouter-route-controller");
        // RBAC changes reach the authorizer's cache within a moment.
        const err = await until("the refusal", async () =>
          start(controllerConfig(token, "replica-d")).then(
            async (c) => {
              await c.stop();
              return undefined;
            },
            (e: unknown) => e as Error,
          ),
        );
        assert.match(err.message, /may not: watch pods \(all namespaces\)\. Grant them in its ClusterRole/);
      } finally {
        for (const c of running) await c.stop();
        running.length = 0;
        // The hand edit owns the rules now: the shipped manifest takes them back.
        cp.kubectl(["apply", "--server-side", "--force-conflicts", "-k", DEPLOY]);
      }
    });

    it("a Node deleted with its VM: its ports, addresses and routes are released at once, another node's kept", async () => {
      for (const c of running) await c.stop();
      running.length = 0;
      for (const [i, vm] of w.vms.entries())
        await cp.api("POST", "/api/v1/nodes", {
          metadata: { name: `vm${i + 1}` },
          spec: { providerID: `openstack:///${vm.serverId}` },
        });
      const [gone, kept] = [w.vms[0]!, w.vms[1]!];
      const subnet = Object.values(w.em.world.subnets)[0]!.id;
      const eni = await w.c.neutron.createPort({ network_id: NET, name: "pod", fixed_ips: [{ subnet_id: subnet }] });
      await w.c.neutron.setTags("ports", eni.id, ["tcnp", ENI_TAG, nodeTag(gone.serverId)]);
      const token = await cp.serviceAccountToken(NS, "vrouter-route-controller");
      const c = await start(controllerConfig(token, "replica-e"));
      const routes = (): string[] => w.em.world.routers[ROUTER]!.routes.map((r) => r.nexthop);
      await until("the leader's first reconcile", async () => (c.last?.ok === true ? true : undefined));
      assert.ok(routes().includes(gone.nodeIp) && routes().includes(kept.nodeIp), JSON.stringify(routes()));
      const wakeups = (): number => c.metrics.get("tcnp_node_deletion_wakeups_total") ?? 0;

      // The VM is deleted and its Node object with it (as a cloud controller manager does).
      await w.c.nova.deleteServer(gone.serverId);
      await w.em.settle();
      await cp.api("DELETE", "/api/v1/nodes/vm1");
      await until("the release, woken by the node watch (the interval is an hour)", async () =>
        w.em.world.ports[eni.id] === undefined && !routes().includes(gone.nodeIp) ? true : undefined,
      );
      assert.equal(wakeups(), 1);
      assert.ok(routes().includes(kept.nodeIp), "the other node's routes are kept");
      assert.ok(w.em.world.ports[kept.portId]!.fixed_ips.length > 1, "the other node's pod addresses are kept");
    });

    for (const mode of ["mix", "eni"] as const)
      it(`the ${mode} example overlay: its configuration is valid for tcnp, a change rolls the DaemonSet, metrics are scrapable`, () => {
        // An operator's copy of the example, as its comment says to make one.
        const o = fs.mkdtempSync(path.join(cp.dir, `example-${mode}-`));
        fs.cpSync(path.join(EXAMPLES, mode), o, { recursive: true });
        const k = path.join(o, "kustomization.yaml");
        fs.writeFileSync(
          k,
          fs
            .readFileSync(k, "utf8")
            .replace("  - ../../base", `  - ${path.relative(o, DEPLOY)}`)
            .replace("newName: registry.example/tcnp", "newName: registry.test/tcnp"),
        );
        cp.kubectl(["apply", "--server-side", "--force-conflicts", "-k", o]);
        const ds = (): PodOwner =>
          JSON.parse(cp.kubectl(["get", "-n", NS, "daemonset/tcnp-node", "-o", "json"])) as PodOwner;
        const before = ds();
        assert.equal(before.spec.template.spec.containers[0]!.image, "registry.test/tcnp:0.1.0");
        const cm = generated<{ metadata: { name: string }; data: Record<string, string> }>("configmap", "tcnp-config");
        // The configuration tcnp-ipam gets: the list's version and name with its first plugin.
        const list = JSON.parse(cm.data["10-tcnp.conflist"]!) as {
          cniVersion: string;
          name: string;
          plugins: object[];
        };
        const conf = parseNetConf(
          JSON.stringify({ cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] }),
          "ADD",
        );
        const ipam = parseIpamConfig(conf, {
          env: {},
          exists: (f) => f === "/etc/tcnp/clouds.yaml",
          readFile: () => fs.readFileSync(path.join(o, "node-clouds.yaml"), "utf8"),
        });
        assert.equal(ipam.mode, mode);
        if (mode === "mix") assert.equal(ipam.nodeBlockPrefix, 26, "one router route per node by default");
        assert.equal(ipam.pool.warm, mode === "mix" ? 5 : 2);
        // Scrapable: the agent's port is declared on the node and annotated for Prometheus.
        const tpl = before.spec.template;
        assert.equal(tpl.metadata.annotations?.["prometheus.io/scrape"], "true");
        assert.equal(tpl.metadata.annotations?.["prometheus.io/port"], "9798");
        assert.deepEqual(
          tpl.spec.containers[0]!.ports?.map((p) => [p.containerPort, p.hostPort]),
          [[9798, 9798]],
        );
        // The operator raises the warm target: the ConfigMap's name changes, and so does the DaemonSet's
        // pod template, which rolls it (the agent reads its configuration when it starts).
        const f = path.join(o, "10-tcnp.conflist");
        fs.writeFileSync(f, fs.readFileSync(f, "utf8").replace(/"warmTarget": \d+/, '"warmTarget": 7'));
        cp.kubectl(["apply", "--server-side", "--force-conflicts", "-k", o]);
        const after = ds();
        const cm2 = generated<{ metadata: { name: string }; data: Record<string, string> }>("configmap", "tcnp-config");
        assert.notEqual(cm2.metadata.name, cm.metadata.name);
        assert.match(cm2.data["10-tcnp.conflist"]!, /"warmTarget": 7/);
        assert.equal(after.metadata.generation, before.metadata.generation + 1, "the pod template changed");
      });
  },
);
