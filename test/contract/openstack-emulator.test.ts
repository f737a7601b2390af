import { Emulator } from "../../src/cloud/emulator.js";
import { applySeed, DEFAULT_ADMIN } from "../../src/cloud/seed.js";
import { openstackContract } from "./openstack-contract.js";

openstackContract(async () => {
  const em = new Emulator({ config: { detachDelayMs: 20 } });
  applySeed(em, {});
  return {
    name: "emulator",
    fetch: em.fetch,
    auth: {
      authUrl: "http://cloud.test/v3",
      username: DEFAULT_ADMIN.user,
      password: DEFAULT_ADMIN.password,
      projectName: DEFAULT_ADMIN.project,
      userDomainName: "Default",
      projectDomainName: "Default",
      interface: "public",
    },
    serverExtras: {},
    routeLimit: em.config.routeLimit,
    close: () => em.settle(),
  };
});
