// Builds the extension with esbuild (type checking is `tsc --noEmit`, `npm run typecheck`):
//
//   node esbuild.mjs               dist/extension.js (what the .vsix runs) and out/core.mjs
//   node esbuild.mjs --production  the same, minified and without source maps
//   node esbuild.mjs --watch       rebuild dist/extension.js on every change
//   node esbuild.mjs --tests       out/core.mjs and the unit tests, out/test/*.test.mjs
//   node esbuild.mjs --core-only [--core-out=FILE]
//                                  only the core bundle (default out/core.mjs)
//
// out/core.mjs is src/core/ as one ES module, for the unit tests and for the integration
// test in tests/clients/vscode-jsonrpc. It is built with nothing marked external, so an
// `import "vscode"` creeping into src/core/ fails the build instead of the tests.

import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const production = args.includes("--production");
const coreOut = args.find((arg) => arg.startsWith("--core-out="))?.slice("--core-out=".length) ?? join(root, "out/core.mjs");

const common = { bundle: true, platform: "node", target: "node20", logLevel: "warning" };

const extension = {
  ...common,
  entryPoints: [join(root, "src/extension.ts")],
  outfile: join(root, "dist/extension.js"),
  format: "cjs",
  // VS Code provides `vscode` at run time; everything else is bundled.
  external: ["vscode"],
  sourcemap: !production,
  minify: production,
};

const core = {
  ...common,
  entryPoints: [join(root, "src/core/index.ts")],
  outfile: coreOut,
  format: "esm",
};

const testDirectory = join(root, "test");
const tests = {
  ...common,
  entryPoints: readdirSync(testDirectory)
    .filter((name) => name.endsWith(".test.ts"))
    .map((name) => join(testDirectory, name)),
  outdir: join(root, "out/test"),
  outExtension: { ".js": ".mjs" },
  format: "esm",
};

if (args.includes("--watch")) {
  const context = await esbuild.context(extension);
  await context.watch();
} else if (args.includes("--core-only")) {
  await esbuild.build(core);
} else if (args.includes("--tests")) {
  await Promise.all([esbuild.build(core), esbuild.build(tests)]);
} else {
  await Promise.all([esbuild.build(extension), esbuild.build(core)]);
}
