// Everything the extension decides without VS Code, in one module: the unit tests and
// the integration test in tests/clients/vscode-jsonrpc import it (bundled by esbuild.mjs
// as out/core.mjs), so they exercise the extension's own logic, not a copy of it.

export * from "./protocol";
export * from "./settings";
export * from "./status";
