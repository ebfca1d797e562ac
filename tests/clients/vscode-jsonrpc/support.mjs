// What the two vscode-jsonrpc client tests share: timeouts, positions and the server's
// stderr.

/** Per-request timeout, `TANDEM_TEST_TIMEOUT_MS` (default 20 s). */
export const REQUEST_TIMEOUT_MS = Number(process.env.TANDEM_TEST_TIMEOUT_MS ?? 20000);
/** `TANDEM_TEST_VERBOSE=1` streams the server's stderr while the test runs. */
export const VERBOSE = process.env.TANDEM_TEST_VERBOSE === "1";

/** `promise`, or a rejection naming `label` when it takes longer than `ms`. */
export function withTimeout(promise, label, ms = REQUEST_TIMEOUT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The end of `text` as an LSP position; JavaScript string lengths are UTF-16 code units. */
export function endPosition(text) {
  const lines = text.split("\n");
  return { line: lines.length - 1, character: lines[lines.length - 1].length };
}

/** Collects the server's stderr so a failure can show what the server said. */
export function collectStderr(child) {
  const chunks = [];
  let size = 0;
  child.stderr.on("data", (chunk) => {
    if (VERBOSE) {
      process.stderr.write(chunk);
    }
    chunks.push(chunk);
    size += chunk.length;
    // Keep roughly the last 64 KiB: enough context, bounded memory.
    while (size > 65536 && chunks.length > 1) {
      size -= chunks.shift().length;
    }
  });
  return () => Buffer.concat(chunks).toString("utf8");
}
