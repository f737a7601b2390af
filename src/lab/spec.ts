// The lab's small cloud: the seed configurations' two networks (eni 73fe…, mix b953…) with their
// subnets on one router, and N VMs whose eth0 is on the mix network. eni pods get NICs hot-plugged
// from the eni network; mix pods take extra addresses of the VM's own port.
import type { Seed } from "../cloud/seed.js";

export const LAB = {
  prefix: "tcnp-lab",
  eniNet: "73fe8ad8-eda8-4ee0-9d10-ffca11752362",
  mixNet: "b9535039-d935-4a33-a7cb-2cc1c58ab904",
  eniSubnet: "7a000000-0000-4000-8000-00000000e001",
  mixSubnet: "7a000000-0000-4000-8000-00000000a001",
  router: "7c000000-0000-4000-8000-000000000001",
  serviceCidr: "198.18.0.0/30",
  externalCidr: "203.0.113.0/24",
  cloudPort: 5000,
  clusterIp: "10.96.0.10",
  nodePort: 30080,
  podPort: 8080,
} as const;

export const labServerId = (i: number): string => `7d000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
export const labVmIp = (i: number): string => `10.10.10.${10 + i}`;

export function labSeed(vms: number): Seed {
  return {
    networks: [
      {
        id: LAB.mixNet,
        name: "mix",
        mtu: 1450,
        subnets: [
          {
            id: LAB.mixSubnet,
            name: "mix-v4",
            cidr: "10.10.10.0/24",
            // The VMs' addresses are the lab's to set, and a DHCP renew could hand a VM a pod's
            // address (README, hazards): no DHCP where mix pods take their addresses.
            enable_dhcp: false,
            allocation_pools: [{ start: "10.10.10.50", end: "10.10.10.250" }],
          },
        ],
      },
      {
        id: LAB.eniNet,
        name: "eni",
        mtu: 1450,
        subnets: [
          {
            id: LAB.eniSubnet,
            name: "eni-v4",
            cidr: "10.10.20.0/24",
            allocation_pools: [{ start: "10.10.20.50", end: "10.10.20.250" }],
          },
        ],
      },
      {
        // The external network behind the router: floating IPs come from it (the router's data
        // path answers for them on its external interface, where the lab's outside client is).
        name: "ext",
        external: true,
        subnets: [
          {
            name: "ext-v4",
            cidr: LAB.externalCidr,
            enable_dhcp: false,
            allocation_pools: [{ start: "203.0.113.100", end: "203.0.113.199" }],
          },
        ],
      },
    ],
    routers: [{ id: LAB.router, name: "lab-router", interfaces: ["mix-v4", "eni-v4"], external_network: "ext" }],
    servers: Array.from({ length: vms }, (_, i) => ({
      id: labServerId(i + 1),
      name: `vm${i + 1}`,
      ports: [{ network: "mix", ip: labVmIp(i + 1) }],
    })),
  };
}

/** The seed's eni conflist, exactly as written but for the cloud (authUrl, or a clouds.yaml entry) and network. */
export const eniConflist = (
  openstackConf: Record<string, unknown>,
  network: string = LAB.eniNet,
): Record<string, unknown> => ({
  name: "cni0",
  cniVersion: "0.3.1",
  plugins: [
    {
      type: "host-device",
      ipam: {
        type: "tcnp-ipam",
        openstackConf,
        neutronConf: { networks: [network], mode: "eni" },
        routes: [{ dst: "0.0.0.0/0" }],
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
});

/** The seed's mix configuration, exactly as written but for the cloud and network. */
export const mixConf = (
  openstackConf: Record<string, unknown>,
  network: string = LAB.mixNet,
): Record<string, unknown> => ({
  name: "cni0",
  cniVersion: "0.3.1",
  type: "veth-route",
  ipam: {
    type: "tcnp-ipam",
    openstackConf,
    neutronConf: { networks: [network], mode: "mix" },
    routes: [{ dst: "0.0.0.0/0" }],
  },
});
