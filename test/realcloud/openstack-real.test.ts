import { openstackContract } from "../contract/openstack-contract.js";
import { realCloud, realCloudSkipReason } from "../helpers/realcloud.js";

const skip = realCloudSkipReason();
openstackContract(
  async () => {
    const rc = realCloud();
    return {
      name: "real",
      fetch: rc.fetch,
      auth: rc.auth,
      serverExtras: { imageRef: rc.image, flavorRef: rc.flavor },
      routeLimit: 30,
    };
  },
  skip === undefined ? {} : { skip },
);
