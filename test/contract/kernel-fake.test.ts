import { FakeKernel } from "../../src/kernel/fake-kernel.js";
import { kernelContract } from "./kernel-contract.js";

let n = 0;
kernelContract("FakeKernel", async () => {
  const kernel = new FakeKernel();
  return { kernel, netns: async (tag) => kernel.createNetns(`fake-${++n}-${tag}`), cleanup: async () => {} };
});
