// Time from a pod's ADD returning to its route being on the router (in Neutron, and as a kernel route
// in the router's namespace), with the controller reconciling every interval; median and p95.
// "watch" runs it with a 60 s interval woken by pod events (a Kubernetes API double sends the pod's
// address right after the ADD, as the kubelet's status update would).
//   sudo node build/bench/route-latency.js [pods] [interval seconds | watch ...]
import { parseControllerConfig } from "../src/controller/config.js";
import { startController } from "../src/controller/run.js";
import { nullLogger } from "../src/log/logger.js";
import { fileSources } from "../src/openstack/credentials.js";
import { kubeDouble } from "../test/helpers/kube-double.js";
import { MIX_NET, POD_SUBNET, ROUTER, World } from "../test/helpers/world.js";
import { ms, summary, table } from "./stats.js";

const PODS = Number(process.argv[2] ?? 30);
const modes = process.argv.slice(3);
const rows: Array<Array<string | number>> = [];
for (const mode of modes.length > 0 ? modes : ["0.5", "2", "watch"]) {
  const watch = mode === "watch";
  const interval = watch ? 60 : Number(mode);
  const api = watch ? await kubeDouble() : undefined;
  const w = await World.start({ vms: 1, home: "mix", podSubnet: true });
  const vm = w.vms[0]!;
  w.install(
    vm,
    "10-tcnp.conf",
    w.mixConf({}, { neutronConf: { networks: [MIX_NET], mode: "mix", subnets: [POD_SUBNET] } }),
  );
  const cfg = parseControllerConfig(
    JSON.stringify({
      openstack: {
        authUrl: "http://cloud.test/v3",
        username: "admin",
        password: "secret",
        project: "admin",
        domain: "default",
      },
      routerId: ROUTER,
      networks: [MIX_NET],
      podCidrs: ["10.10.30.0/24"],
      intervalSeconds: interval,
      aggregate: false,
      kubernetes: api === undefined ? { enabled: false } : { enabled: true, apiUrl: api.url, events: false },
    }),
    "bench.json",
    fileSources({}),
  );
  const c = await startController(cfg, { env: {}, log: nullLogger, fetch: w.em.fetch });
  const neutron: number[] = [];
  const kernel: number[] = [];
  try {
    for (let i = 0; i < PODS; i++) {
      // A random pause, so ADDs do not fall into step with the controller's interval.
      await new Promise((res) => setTimeout(res, Math.random() * (watch ? 1 : interval) * 1000));
      const pod = await w.newPod();
      const r = await w.cni(vm, "add", pod);
      const t0 = process.hrtime.bigint();
      if (r.status !== 0) throw new Error(r.stderr);
      const ip = String((r.json!["ips"] as Array<{ address: string }>)[0]!.address).split("/")[0]!;
      api?.podEvent("MODIFIED", { namespace: "default", name: pod.id, uid: pod.id, ip });
      let n: number | undefined;
      let k: number | undefined;
      while (n === undefined || k === undefined) {
        if (n === undefined && w.em.world.routers[ROUTER]!.routes.some((x) => x.destination === `${ip}/32`)) n = ms(t0);
        if (k === undefined && (await w.kernel.listRoutes(w.topo.ns.router)).some((x) => x.dst === `${ip}/32`))
          k = ms(t0);
        if (ms(t0) > (watch ? 5000 : 10 * interval * 1000 + 5000)) throw new Error(`no route for ${ip}`);
        await new Promise((res) => setTimeout(res, 10));
      }
      neutron.push(n);
      kernel.push(k);
    }
  } finally {
    await c.stop();
    await w.stop();
    await api?.close();
  }
  const sn = summary(neutron);
  const sk = summary(kernel);
  rows.push([watch ? "60, pod watch" : interval, PODS, sn.median, sn.p95, sk.median, sk.p95]);
}
process.stdout.write(
  `pod ADD returned → route installed, ${PODS} pods at random moments, controller polling Neutron every interval (or woken by the pod watch)\n`,
);
process.stdout.write(
  `${table(["interval s", "pods", "Neutron median ms", "Neutron p95 ms", "router netns median ms", "router netns p95 ms"], rows)}\n`,
);
