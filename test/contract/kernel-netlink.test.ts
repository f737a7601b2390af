import { NetlinkKernel } from "../../src/kernel/netlink-kernel.js";
import { addNetns, cleanupNamespaces } from "../helpers/namespaces.js";
import { rootSkipReason } from "../helpers/root.js";
import { kernelContract } from "./kernel-contract.js";

const skip = rootSkipReason("iptables-restore");
kernelContract(
  "NetlinkKernel (real kernel, throwaway namespaces)",
  async () => {
    const kernel = await NetlinkKernel.create();
    return {
      kernel,
      netns: async (tag) => addNetns(tag).path,
      cleanup: async () => {
        kernel.close();
        cleanupNamespaces();
      },
    };
  },
  skip === undefined ? {} : { skip },
);
