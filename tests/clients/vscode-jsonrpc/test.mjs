// Drives a real `tandem --stdio` with vscode-jsonrpc, the JSON-RPC layer VS Code's LSP client
// is built on, so framing and handshake bugs show up the way VS Code users would hit them.
//
// Environment (see ../README.md):
//   TANDEM_BIN       path to the tandem binary (required)
//   TANDEM_SERVER    passed through to the server's environment (credentials come from env here)
//   TANDEM_API_KEY   passed through likewise
//   EXPECTED_TEXT    the suggestion the provider answers with; unset or empty means the
//                    server is expected to answer with empty results
//   TANDEM_DOC_TEXT  initial document text (default: a small Python file)
//   TANDEM_TEST_TIMEOUT_MS  per-request timeout, default 20000
//   TANDEM_TEST_VERBOSE=1   stream the server's stderr while the test runs

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import jsonrpc from "vscode-jsonrpc/node";
import { collectStderr, endPosition, REQUEST_TIMEOUT_MS, withTimeout } from "./support.mjs";

const {
  CancellationTokenSource,
  StreamMessageReader,
  StreamMessageWriter,
  createMessageConnection,
} = jsonrpc;

const ROOT_URI = "file:///workspace";
const DOC_URI = "file:///workspace/example.py";
const EXPECTED_TEXT = process.env.EXPECTED_TEXT ?? "";

const DEFAULT_DOC = [
  "import math",
  "",
  "",
  "def area(radius):",
  "    return math.pi * radius ** 2",
  "",
].join("\n");

/** LSP error codes a cancelled request may legitimately end with. */
const REQUEST_CANCELLED = -32800;
const CONTENT_MODIFIED = -32801;

function log(message) {
  process.stderr.write(`[vscode-jsonrpc test] ${message}\n`);
}

/** Converts an LSP position (UTF-16) into a JavaScript string index. */
function offsetAt(text, position) {
  const lines = text.split("\n");
  assert.ok(position.line < lines.length, `position ${JSON.stringify(position)} past end of document`);
  let offset = 0;
  for (let line = 0; line < position.line; line += 1) {
    offset += lines[line].length + 1;
  }
  return offset + Math.min(position.character, lines[position.line].length);
}

function applyChange(text, change) {
  return text.slice(0, offsetAt(text, change.range.start)) + change.text + text.slice(offsetAt(text, change.range.end));
}

test("tandem over vscode-jsonrpc: handshake, incremental sync, completions, clean exit", { timeout: REQUEST_TIMEOUT_MS * 8 }, async (t) => {
  const bin = process.env.TANDEM_BIN;
  assert.ok(bin, "TANDEM_BIN must point at the tandem binary");

  log(`spawning ${bin} --stdio (TANDEM_SERVER=${process.env.TANDEM_SERVER ?? "<unset>"}, EXPECTED_TEXT=${JSON.stringify(EXPECTED_TEXT)})`);
  // The whole environment is inherited, which passes TANDEM_SERVER / TANDEM_API_KEY (and a
  // runner's TANDEM_CONFIG_DIR / TANDEM_LOG) through unchanged.
  const child = spawn(bin, ["--stdio"], { stdio: ["pipe", "pipe", "pipe"], env: process.env });
  const serverStderr = collectStderr(child);
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  const spawnFailed = new Promise((_, reject) => child.on("error", reject));
  spawnFailed.catch(() => undefined);

  const protocolErrors = [];
  const connection = createMessageConnection(
    new StreamMessageReader(child.stdout),
    new StreamMessageWriter(child.stdin),
  );
  // A reader error means something other than a framed JSON-RPC message reached stdout.
  connection.onError(([error]) => {
    protocolErrors.push(error?.message ?? String(error));
  });
  connection.onNotification((method, params) => {
    if (method === "window/logMessage" || method === "window/showMessage") {
      log(`server ${method}: ${params?.message}`);
    }
  });
  // Answer the server-to-client requests a real editor would, so none of them stalls the server.
  connection.onRequest((method, params) => {
    if (method === "workspace/configuration") {
      return (params?.items ?? []).map(() => null);
    }
    return null;
  });
  connection.listen();

  t.after(() => {
    connection.dispose();
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
    }
  });

  const failWithContext = (error) => {
    log(`FAILED: ${error?.stack ?? error}`);
    if (protocolErrors.length > 0) {
      log(`protocol errors seen: ${JSON.stringify(protocolErrors)}`);
    }
    log(`server stderr (tail):\n${serverStderr() || "<empty>"}`);
    throw error;
  };

  try {
    // vscode-jsonrpc treats every extra argument as a positional parameter, so `undefined`
    // params or tokens must be left out rather than passed.
    const request = (method, params, label = method, token) => {
      const args = [params, token].filter((argument) => argument !== undefined);
      return withTimeout(Promise.race([connection.sendRequest(method, ...args), spawnFailed]), label);
    };

    // ---- initialize / initialized -------------------------------------------------------
    const initializeResult = await request("initialize", {
      processId: process.pid,
      clientInfo: { name: "tandem-vscode-jsonrpc-test", version: "0.1.0" },
      locale: "en",
      rootUri: ROOT_URI,
      workspaceFolders: [{ uri: ROOT_URI, name: "workspace" }],
      capabilities: {
        general: { positionEncodings: ["utf-16"] },
        textDocument: {
          synchronization: { dynamicRegistration: false, didSave: false, willSave: false },
          completion: { dynamicRegistration: false, completionItem: { snippetSupport: false } },
          inlineCompletion: { dynamicRegistration: false },
        },
        workspace: { workspaceFolders: true, configuration: false },
        window: { workDoneProgress: false },
      },
    });
    const capabilities = initializeResult?.capabilities;
    assert.ok(capabilities, `initialize result has no capabilities: ${JSON.stringify(initializeResult)}`);
    log(`server capabilities: ${JSON.stringify(capabilities)}`);
    // Only UTF-16 was offered, so a server that names an encoding must name that one.
    if (capabilities.positionEncoding !== undefined) {
      assert.equal(capabilities.positionEncoding, "utf-16", "server chose an encoding the client did not offer");
    }
    assert.ok(capabilities.completionProvider, "server does not advertise textDocument/completion");
    const sync = capabilities.textDocumentSync;
    const syncKind = typeof sync === "number" ? sync : sync?.change;
    assert.ok(syncKind === 1 || syncKind === 2, `server does not accept document changes (textDocumentSync=${JSON.stringify(sync)})`);
    await connection.sendNotification("initialized", {});

    // ---- didOpen and edits ----------------------------------------------------------------
    let text = process.env.TANDEM_DOC_TEXT ?? DEFAULT_DOC;
    let version = 1;
    await connection.sendNotification("textDocument/didOpen", {
      textDocument: { uri: DOC_URI, languageId: "python", version, text },
    });

    // Each entry is one didChange notification; its changes apply in order, as the spec says.
    // The edits type a new function at the end, with non-BMP characters (two UTF-16 units
    // each) on a line before the cursor and on the cursor line itself, a typo fixed by a replacement and a deletion, the way a person
    // types. Positions are computed against the text as it stands before each change.
    const editSteps = [
      (current) => [{ at: endPosition(current), text: "\n\ndef scale(values, factor):\n" }],
      (current) => [{ at: endPosition(current), text: "    # multiplie par le facteur \u2713 \u{1F642}\n" }],
      (current) => [
        { at: endPosition(current), text: "    return [v * factor for v in valuse" },
        // Two changes in one notification, the second relative to the first's result.
        (afterFirst) => {
          const end = endPosition(afterFirst);
          return { range: { start: { line: end.line, character: end.character - 2 }, end }, text: "es" };
        },
      ],
      (current) => [{ at: endPosition(current), text: "]\n\n\ndef total(values):\n    label = \"\u03a3 \u{1F642}\"; retrun" }],
      (current) => {
        // Delete the mistyped "run" so the word being typed is "ret".
        const end = endPosition(current);
        return [{ range: { start: { line: end.line, character: end.character - 3 }, end }, text: "" }];
      },
    ];

    for (const step of editSteps) {
      const before = text;
      const contentChanges = [];
      for (const edit of step(text)) {
        const change = typeof edit === "function"
          ? edit(text)
          : "range" in edit ? edit : { range: { start: edit.at, end: edit.at }, text: edit.text };
        text = applyChange(text, change);
        contentChanges.push(change);
      }
      version += 1;
      await connection.sendNotification("textDocument/didChange", {
        textDocument: { uri: DOC_URI, version },
        // A server that asked for full sync gets the whole text, as VS Code would send it.
        contentChanges: syncKind === 2 ? contentChanges : [{ text }],
      });
      assert.notEqual(text, before);
    }
    assert.ok(text.endsWith("; ret"), `edit script produced unexpected text: ${JSON.stringify(text)}`);
    const cursor = endPosition(text);
    log(`document after ${version - 1} changes, cursor ${JSON.stringify(cursor)}`);

    // ---- textDocument/inlineCompletion ---------------------------------------------------
    const inlineResult = await request("textDocument/inlineCompletion", {
      textDocument: { uri: DOC_URI },
      position: cursor,
      context: { triggerKind: 1 },
    });
    log(`inlineCompletion result: ${JSON.stringify(inlineResult)}`);
    const inlineItems = Array.isArray(inlineResult) ? inlineResult : inlineResult?.items;
    assert.ok(Array.isArray(inlineItems), `inlineCompletion result has no items array: ${JSON.stringify(inlineResult)}`);
    if (EXPECTED_TEXT === "") {
      assert.equal(inlineItems.length, 0, "expected no inline items because EXPECTED_TEXT is empty");
    } else {
      assert.ok(inlineItems.length >= 1, "expected at least one inline completion item");
      assert.equal(inlineItems[0].insertText, EXPECTED_TEXT, "inline item insertText");
      if (inlineItems[0].range !== undefined) {
        assert.deepEqual(inlineItems[0].range.end, cursor, "inline item range must end at the cursor");
      }
    }

    // ---- textDocument/completion ----------------------------------------------------------
    const completionResult = await request("textDocument/completion", {
      textDocument: { uri: DOC_URI },
      position: cursor,
      context: { triggerKind: 1 },
    });
    log(`completion result: ${JSON.stringify(completionResult)}`);
    const completionItems = Array.isArray(completionResult) ? completionResult : completionResult?.items;
    assert.ok(Array.isArray(completionItems), `completion result has no items: ${JSON.stringify(completionResult)}`);
    if (EXPECTED_TEXT === "") {
      assert.equal(completionItems.length, 0, "expected no completion items because EXPECTED_TEXT is empty");
    } else {
      assert.ok(completionItems.length >= 1, "expected at least one completion item");
      const textEdit = completionItems[0].textEdit;
      assert.ok(textEdit, `completion item has no textEdit: ${JSON.stringify(completionItems[0])}`);
      assert.ok(
        textEdit.newText.endsWith(EXPECTED_TEXT),
        `textEdit.newText ${JSON.stringify(textEdit.newText)} does not end with ${JSON.stringify(EXPECTED_TEXT)}`,
      );
      // The edit replaces the word being typed with word + suggestion; the replaced text comes
      // from the server's copy of the document, so this also checks the incremental sync.
      const range = textEdit.range ?? textEdit.replace ?? textEdit.insert;
      assert.deepEqual(range.end, cursor, "completion textEdit must end at the cursor");
      const replaced = text.slice(offsetAt(text, range.start), offsetAt(text, range.end));
      assert.equal(textEdit.newText, replaced + EXPECTED_TEXT, "newText must be the replaced word plus the suggestion");
    }

    // ---- cancellation: exactly one response, a result or RequestCancelled -----------------
    const source = new CancellationTokenSource();
    const cancelled = request(
      "textDocument/inlineCompletion",
      { textDocument: { uri: DOC_URI }, position: cursor, context: { triggerKind: 2 } },
      "cancelled textDocument/inlineCompletion",
      source.token,
    );
    source.cancel();
    try {
      await cancelled;
    } catch (error) {
      assert.ok(
        error?.code === REQUEST_CANCELLED || error?.code === CONTENT_MODIFIED,
        `cancelled request failed with something other than RequestCancelled: ${error?.stack ?? error}`,
      );
    }

    // ---- didClose, shutdown, exit ----------------------------------------------------------
    await connection.sendNotification("textDocument/didClose", { textDocument: { uri: DOC_URI } });
    const shutdownResult = await request("shutdown", undefined);
    assert.equal(shutdownResult ?? null, null, "shutdown must answer null");
    await connection.sendNotification("exit");
    const { code, signal } = await withTimeout(exited, "process exit after `exit`", 10000);
    assert.equal(signal, null, `server was killed by ${signal}`);
    assert.equal(code, 0, "server exit code after shutdown + exit");
    assert.deepEqual(protocolErrors, [], "stdout carried something other than JSON-RPC");
    log("PASS");
  } catch (error) {
    failWithContext(error);
  }
});
