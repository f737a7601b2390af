// The layers of src/ (README, "Development"): a folder imports only from its own layer or below,
// nothing imports a test helper, and no two modules or folders reach each other in a cycle.
const layers = [
  ["base", "cni", "net", "log", "util", "native", "version.ts"],
  ["kernel", "openstack", "state"],
  ["ipam", "cloud", "policy"],
  ["plugins", "controller", "agent"],
  ["doctor", "lab", "install"],
  ["cli"],
  ["bin"],
];
const folders = (from) =>
  layers
    .slice(from)
    .flat()
    .map((f) => f.replace(/\./g, "\\."))
    .join("|");

module.exports = {
  forbidden: [
    ...layers.slice(0, -1).map((layer, i) => ({
      name: `layer-${i}-imports-up`,
      comment: `${layer.join(", ")} may only import from their own layer or below`,
      severity: "error",
      from: { path: `^src/(${layer.map((f) => f.replace(/\./g, "\\.")).join("|")})` },
      to: { path: `^src/(${folders(i + 1)})` },
    })),
    {
      name: "no-folder-cycle",
      comment: "no cycle leaves its folder: the folders of src/ form layers",
      severity: "error",
      from: { path: "^src/([^/]+)/" },
      to: { circular: true, viaSomeNot: "^src/$1/" },
    },
    {
      name: "no-runtime-cycle",
      comment: "no cycle of imports that exist at run time (type-only imports are erased)",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true, viaOnly: { dependencyTypesNot: ["type-only"] } },
    },
    {
      name: "src-imports-no-tests",
      comment: "production code never imports test helpers",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(test|bench)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "\\.test\\.ts$" },
  },
};
