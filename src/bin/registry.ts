// Name → plugin factory. Each plugin is imported on demand so a process loads only its own code.
import type { CniPlugin } from "../cni/skel.js";
import type { CniPluginName } from "../base/names.js";
import type { NodeDeps } from "./wiring.js";

export async function loadPlugin(name: CniPluginName, deps: NodeDeps): Promise<CniPlugin> {
  switch (name) {
    case "tcnp-ipam":
      return (await import("../ipam/plugin.js")).createIpam(deps);
    case "veth-route":
      return (await import("../plugins/veth-route/plugin.js")).createVethRoute(deps);
    case "host-device":
      return (await import("../plugins/host-device/plugin.js")).createHostDevice(deps);
    case "veth-host":
      return (await import("../plugins/veth-host/plugin.js")).createVethHost(deps);
  }
}
