import { test } from "node:test";
import assert from "node:assert/strict";
import { describeFact } from "../expect.js";
import { planVethRoute, type VethRouteInput } from "./plan.js";

const POD = "/var/run/netns/pod-a";
const input: VethRouteInput = {
  hostVeth: "tcnp0123456789a",
  hostMac: "02:00:00:00:00:01",
  podNetns: POD,
  podIfname: "eth0",
  podMac: "0a:58:0a:00:00:39",
  podIp: "10.0.0.57",
  mtu: 1450,
  uplink: "eth0",
  routes: ["0.0.0.0/0", "192.168.0.0/16"],
  holder: "proxy-arp",
};

test("veth-route plans the veth, the link-local gateway, the host route and the proxy entry", () => {
  const plan = planVethRoute(input);
  assert.deepEqual(plan.steps, [
    { op: "writeSysctl", ns: "self", key: "net.ipv4.ip_forward", value: "1", keep: true },
    {
      op: "createVeth",
      ns: "self",
      spec: {
        name: "tcnp0123456789a",
        mac: "02:00:00:00:00:01",
        mtu: 1450,
        peer: { name: "eth0", netns: POD, mac: "0a:58:0a:00:00:39", mtu: 1450 },
      },
    },
    { op: "writeSysctl", ns: "self", key: "net/ipv4/conf/tcnp0123456789a/proxy_arp", value: "1" },
    { op: "writeSysctl", ns: "self", key: "net/ipv4/neigh/tcnp0123456789a/proxy_delay", value: "0" },
    { op: "writeSysctl", ns: "self", key: "net/ipv4/conf/tcnp0123456789a/rp_filter", value: "1" },
    { op: "setLink", ns: "self", name: "tcnp0123456789a", change: { up: true } },
    { op: "addRoute", ns: "self", route: { dst: "10.0.0.57/32", dev: "tcnp0123456789a", scope: "global" } },
    { op: "setLink", ns: POD, name: "lo", change: { up: true } },
    { op: "addAddress", ns: POD, addr: { cidr: "10.0.0.57/32", dev: "eth0" } },
    { op: "setLink", ns: POD, name: "eth0", change: { up: true } },
    { op: "addRoute", ns: POD, route: { dst: "169.254.1.1/32", dev: "eth0", scope: "link" } },
    {
      op: "setNeighbour",
      ns: POD,
      neigh: { dev: "eth0", ip: "169.254.1.1", mac: "02:00:00:00:00:01", permanent: true },
    },
    { op: "addRoute", ns: POD, route: { dst: "0.0.0.0/0", gw: "169.254.1.1", dev: "eth0" } },
    { op: "addRoute", ns: POD, route: { dst: "192.168.0.0/16", gw: "169.254.1.1", dev: "eth0" } },
    { op: "writeSysctl", ns: "self", key: "net/ipv4/neigh/eth0/proxy_delay", value: "0", keep: true },
    { op: "setNeighbour", ns: "self", neigh: { dev: "eth0", ip: "10.0.0.57", proxy: true } },
    { op: "announce", ns: "self", dev: "eth0", ip: "10.0.0.57" },
  ]);
  assert.deepEqual(plan.teardown, [
    { op: "deleteNeighbour", ns: "self", neigh: { dev: "eth0", ip: "10.0.0.57", proxy: true } },
    { op: "deleteRoute", ns: "self", route: { dst: "10.0.0.57/32", dev: "tcnp0123456789a" } },
    { op: "deleteLink", ns: "self", name: "tcnp0123456789a" },
  ]);
  assert.deepEqual(
    plan.expect.map((e) => `${e.severity} ${e.code}: ${e.fact.ns === "self" ? "host" : "pod"} ${describeFact(e.fact)}`),
    [
      "error host-forwarding: host sysctl net.ipv4.ip_forward",
      "error host-veth: host interface tcnp0123456789a",
      "error host-route: host route 10.0.0.57/32 dev tcnp0123456789a",
      "error gateway-proxy-arp: host sysctl net/ipv4/conf/tcnp0123456789a/proxy_arp",
      "warning gateway-proxy-delay: host sysctl net/ipv4/neigh/tcnp0123456789a/proxy_delay",
      "error anti-spoofing: host sysctl net/ipv4/conf/tcnp0123456789a/rp_filter",
      "warning proxy-arp: host proxy-ARP entry 10.0.0.57 on eth0",
      "warning uplink-proxy-delay: host sysctl net/ipv4/neigh/eth0/proxy_delay",
      "warning pod-loopback: pod interface lo",
      "error pod-interface: pod interface eth0",
      "error pod-address: pod address 10.0.0.57/32 on eth0",
      "error pod-gateway-route: pod route 169.254.1.1/32 dev eth0 scope link",
      "warning pod-gateway-neighbour: pod neighbour 169.254.1.1 on eth0",
      "error pod-default-route: pod route default via 169.254.1.1 dev eth0",
      "error pod-route: pod route 192.168.0.0/16 via 169.254.1.1 dev eth0",
    ],
  );
  assert.deepEqual(plan.result, {
    interfaces: [
      { name: "tcnp0123456789a", mac: "02:00:00:00:00:01" },
      { name: "eth0", mac: "0a:58:0a:00:00:39", sandbox: POD },
    ],
    ips: [{ address: "10.0.0.57/32", gateway: "169.254.1.1", interface: 1 }],
    routes: [
      { dst: "0.0.0.0/0", gw: "169.254.1.1" },
      { dst: "192.168.0.0/16", gw: "169.254.1.1" },
    ],
  });
});

test("veth-route with a dummy gateway holder and no uplink plans no proxy ARP and publishes nothing", () => {
  const { uplink: _u, ...rest } = input;
  const plan = planVethRoute({ ...rest, holder: "dummy", routes: ["0.0.0.0/0"] });
  assert.equal(
    plan.steps.some((s) => s.op === "writeSysctl" && s.key.includes("proxy")),
    false,
  );
  assert.equal(
    plan.steps.some((s) => s.op === "setNeighbour" && s.neigh.proxy === true),
    false,
  );
  assert.equal(
    plan.steps.some((s) => s.op === "announce"),
    false,
  );
  assert.deepEqual(plan.teardown, [
    { op: "deleteRoute", ns: "self", route: { dst: "10.0.0.57/32", dev: "tcnp0123456789a" } },
    { op: "deleteLink", ns: "self", name: "tcnp0123456789a" },
  ]);
  assert.equal(
    plan.expect.some((e) => e.code === "proxy-arp" || e.code.startsWith("gateway-")),
    false,
  );
});
