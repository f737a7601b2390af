// The release version, stamped at build time (esbuild define), "dev" in a build tree.
declare const __TCNP_VERSION__: string | undefined;
export const VERSION: string = typeof __TCNP_VERSION__ === "string" ? __TCNP_VERSION__ : "dev";
