// Name → plugin factory. Each plugin is imported on demand so a process loads only its own code.
import type { CniPlugin } from "../cni/skel.js";
import type { CniPluginName } from "../cli/names.js";
import type { IpamDeps } from "../ipam/plugin.js";

export async function loadPlugin(name: CniPluginName, deps: IpamDeps): Promise<CniPlugin> {
  switch (name) {
    case "tcnp-ipam":
      return (await import("../ipam/plugin.js")).createIpam(deps);
    case "veth-route":
      return (await import("./veth-route/plugin.js")).createVethRoute(deps);
    case "host-device":
      return (await import("./host-device/plugin.js")).createHostDevice(deps);
    case "veth-host":
      return (await import("./veth-host/plugin.js")).createVethHost(deps);
  }
}
