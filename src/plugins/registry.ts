// Name → plugin factory. Each plugin is imported on demand so a process loads only its own code.
import type { CniPlugin } from "../cni/skel.js";
import type { CniPluginName } from "../cli/names.js";
import type { PluginDeps } from "./deps.js";

export async function loadPlugin(name: CniPluginName, _deps: PluginDeps): Promise<CniPlugin> {
  switch (name) {
    case "tcnp-ipam":
    case "host-device":
    case "veth-host":
    case "veth-route":
      throw new Error(`Plugin "${name}" is not available in this build`);
  }
}
