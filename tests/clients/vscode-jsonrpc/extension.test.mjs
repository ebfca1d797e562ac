// The VS Code extension's conversation with a real `tandem --stdio`, replayed with
// Microsoft's vscode-languageserver-protocol (the layer vscode-languageclient is built
// on). The Tandem-specific requests are built, and the answers read, by the extension's
// own core module (editors/vscode/src/core, bundled as out/core.mjs), so a change there
// that the server does not understand fails here.
//
// The story: start signed out with the extension's initializationOptions and status
// capability, sign in with the device flow (the runner approves the code this test prints
// as `SIGN_IN_CODE <code>` on stdout), get a suggestion, change a setting, explain a
// selection while it streams, cancel an explanation, sign out, shut down.
//
// Environment (see ../README.md):
//   TANDEM_BIN            path to the tandem binary (required)
//   TANDEM_SERVER         the cloud's URL, sent as the extension's `tandem.server` setting
//   EXPECTED_TEXT         what the provider answers a completion with
//   EXPECTED_EXPLANATION  what it answers an explanation with (streamed in pieces)
//   EXPECTED_EMAIL        who approves the sign-in
//   TANDEM_VSCODE_CORE    the core bundle (default ../../../editors/vscode/out/core.mjs)
//   TANDEM_CONFIG_DIR     an empty directory: where the server keeps the credentials
//   TANDEM_TEST_TIMEOUT_MS  per-request timeout, default 20000
//   TANDEM_SIGN_IN_TIMEOUT_MS  how long to wait for the approval, default 60000
//   TANDEM_TEST_VERBOSE=1   stream the server's stderr while the test runs

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import protocol from "vscode-languageserver-protocol/node";
import { collectStderr, endPosition, REQUEST_TIMEOUT_MS, withTimeout } from "./support.mjs";

const {
  CancellationTokenSource,
  DidChangeConfigurationNotification,
  DidChangeTextDocumentNotification,
  DidCloseTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExecuteCommandRequest,
  ExitNotification,
  InitializeRequest,
  InitializedNotification,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  LSPErrorCodes,
  NotificationType,
  ProgressType,
  RequestType,
  ShowDocumentRequest,
  ShowMessageNotification,
  ShutdownRequest,
  StreamMessageReader,
  StreamMessageWriter,
  createProtocolConnection,
} = protocol;

const here = dirname(fileURLToPath(import.meta.url));
const corePath = process.env.TANDEM_VSCODE_CORE ?? resolve(here, "../../../editors/vscode/out/core.mjs");
const core = await import(pathToFileURL(corePath).href);

const SIGN_IN_TIMEOUT_MS = Number(process.env.TANDEM_SIGN_IN_TIMEOUT_MS ?? 60000);
const CLOUD = process.env.TANDEM_SERVER ?? "";
const EXPECTED_TEXT = process.env.EXPECTED_TEXT ?? "";
const EXPECTED_EXPLANATION = process.env.EXPECTED_EXPLANATION ?? "";
const EXPECTED_EMAIL = process.env.EXPECTED_EMAIL ?? "";

const ROOT_URI = "file:///workspace";
const DOC_URI = "file:///workspace/stats.py";
const DOC = ["def mean(values):", "    return sum(values) / len(values)", "", "", "def total(values):", "    ret"].join(
  "\n",
);

// Typed like the extension's calls: `client.sendRequest(Methods.status, STATUS_PARAMS)` etc.
const StatusRequest = new RequestType(core.Methods.status);
const ExplainRequest = new RequestType(core.Methods.explain);
const DidChangeStatusNotification = new NotificationType(core.Methods.didChangeStatus);

/**
 * The client capabilities vscode-languageclient 11 sends, for the parts `tandem lsp`
 * reads (docs/editors/PROTOCOL.md, "Client capabilities Tandem reads") or answers
 * differently for, plus what the extension adds through its StatusFeature
 * (`core.addTandemCapabilities`).
 */
function extensionCapabilities() {
  const capabilities = {
    general: {
      positionEncodings: ["utf-16"],
      staleRequestSupport: { cancel: true, retryOnContentModified: [] },
      markdown: { parser: "marked", version: "1.1.0" },
    },
    window: {
      workDoneProgress: true,
      showMessage: { messageActionItem: { additionalPropertiesSupport: true } },
      showDocument: { support: true },
    },
    workspace: {
      applyEdit: true,
      workspaceEdit: { documentChanges: true, resourceOperations: ["create", "rename", "delete"] },
      didChangeConfiguration: { dynamicRegistration: true },
      executeCommand: { dynamicRegistration: true },
      configuration: true,
      workspaceFolders: true,
    },
    textDocument: {
      synchronization: { dynamicRegistration: true, willSave: true, willSaveWaitUntil: true, didSave: true },
      completion: {
        dynamicRegistration: true,
        contextSupport: true,
        completionItem: { snippetSupport: true, insertReplaceSupport: true, labelDetailsSupport: true },
      },
      inlineCompletion: { dynamicRegistration: true },
      codeAction: {
        dynamicRegistration: true,
        isPreferredSupport: true,
        dataSupport: true,
        resolveSupport: { properties: ["edit"] },
        codeActionLiteralSupport: {
          codeActionKind: {
            valueSet: ["", "quickfix", "refactor", "refactor.extract", "refactor.inline", "refactor.rewrite", "source"],
          },
        },
      },
    },
  };
  core.addTandemCapabilities(capabilities);
  return capabilities;
}

function log(message) {
  process.stderr.write(`[vscode extension test] ${message}\n`);
}

/** Polls `condition` every 20 ms until it holds; `describe` says what was missing. */
async function waitUntil(condition, describe, ms = REQUEST_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`${describe()}: not within ${ms} ms`);
    }
    await new Promise((resolveTick) => setTimeout(resolveTick, 20));
  }
}

/** Every Status the server pushed, in order, and a way to wait for one. */
class StatusLog {
  constructor() {
    this.statuses = [];
    this.waiters = [];
  }

  push(status) {
    this.statuses.push(status);
    for (const waiter of [...this.waiters]) {
      waiter();
    }
  }

  /** The first Status from index `from` on that satisfies `predicate`. */
  async waitFor(predicate, label, from = 0, ms = REQUEST_TIMEOUT_MS) {
    const find = () => this.statuses.slice(from).find(predicate);
    const found = find();
    if (found !== undefined) {
      return found;
    }
    let waiter;
    const arrived = new Promise((resolveArrived) => {
      waiter = () => {
        const match = find();
        if (match !== undefined) {
          resolveArrived(match);
        }
      };
      this.waiters.push(waiter);
    });
    try {
      return await withTimeout(arrived, `tandem/didChangeStatus ${label}`, ms);
    } catch (error) {
      error.message += `; statuses seen: ${JSON.stringify(this.statuses.slice(from).map((status) => status.state))}`;
      throw error;
    } finally {
      this.waiters = this.waiters.filter((entry) => entry !== waiter);
    }
  }
}

test("the VS Code extension's requests against tandem lsp: sign in, suggest, explain, sign out", { timeout: REQUEST_TIMEOUT_MS * 10 + SIGN_IN_TIMEOUT_MS }, async (t) => {
  const bin = process.env.TANDEM_BIN;
  assert.ok(bin, "TANDEM_BIN must point at the tandem binary");
  assert.ok(CLOUD, "TANDEM_SERVER must be the cloud's URL");
  assert.ok(EXPECTED_TEXT && EXPECTED_EXPLANATION && EXPECTED_EMAIL, "EXPECTED_TEXT, EXPECTED_EXPLANATION and EXPECTED_EMAIL are required");

  // Credentials reach the server only through the extension's settings, as in VS Code:
  // none in the environment, and TANDEM_CONFIG_DIR (the runner's empty directory) holds
  // no credentials file, so the server starts signed out.
  const env = { ...process.env };
  delete env.TANDEM_API_KEY;
  delete env.TANDEM_SERVER;
  // Started as the extension starts it.
  const child = spawn(bin, [...core.SERVER_ARGS], { stdio: ["pipe", "pipe", "pipe"], env });
  const serverStderr = collectStderr(child);
  const exited = new Promise((resolveExit) => child.on("exit", (code, signal) => resolveExit({ code, signal })));
  const spawnFailed = new Promise((_, reject) => child.on("error", reject));
  spawnFailed.catch(() => undefined);

  const connection = createProtocolConnection(new StreamMessageReader(child.stdout), new StreamMessageWriter(child.stdin));
  const protocolErrors = [];
  connection.onError(([error]) => protocolErrors.push(error?.message ?? String(error)));

  const statuses = new StatusLog();
  // Handlers only record: an exception thrown in one would become an error answer to the
  // server (or a log line), not a failed test. The checks come after.
  const unreadable = [];
  connection.onNotification(DidChangeStatusNotification, (params) => {
    const status = core.parseStatus(params);
    if (status === undefined) {
      unreadable.push(params);
    } else {
      statuses.push(status);
    }
  });
  const messages = [];
  connection.onNotification(ShowMessageNotification.type, (params) => {
    messages.push(params.message);
    log(`server window/showMessage: ${params.message}`);
  });
  // What the extension's `window.showDocument` middleware does: while its own
  // `tandem.signIn` is on the way the page is held (`success: false`) until the user
  // clicks "Copy code and open browser".
  const shownDocuments = [];
  let signingIn = false;
  connection.onRequest(ShowDocumentRequest.type, (params) => {
    shownDocuments.push({ ...params, duringSignIn: signingIn });
    return { success: false };
  });
  // The server asks nothing else of this client today; should it start to, the request is
  // logged and gets an empty answer rather than stalling the server.
  connection.onRequest((method, params) => {
    log(`server request ${method} ${JSON.stringify(params)}`);
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

  // vscode-jsonrpc takes every extra argument as a parameter, so absent ones are left out.
  const request = (type, params, label, token) => {
    const args = [params, token].filter((argument) => argument !== undefined);
    return withTimeout(Promise.race([connection.sendRequest(type, ...args), spawnFailed]), label ?? type.method);
  };

  try {
    // ---- initialize, as the extension starts the server -------------------------------
    const settings = core.serverSettings({
      server: CLOUD,
      apiKey: "",
      storedApiKey: undefined,
      integers: { debounceMs: 10, requestTimeoutMs: 10000 },
    });
    assert.deepEqual(settings, { server: CLOUD, debounceMs: 10, requestTimeoutMs: 10000 });
    const initialized = await request(InitializeRequest.type, {
      processId: process.pid,
      clientInfo: { name: "Visual Studio Code", version: "1.91.0" },
      locale: "en",
      rootUri: ROOT_URI,
      workspaceFolders: [{ uri: ROOT_URI, name: "workspace" }],
      capabilities: extensionCapabilities(),
      initializationOptions: settings,
    });
    const capabilities = initialized.capabilities;
    log(`initialize: ${JSON.stringify(capabilities)}`);
    assert.equal(capabilities.positionEncoding ?? "utf-16", "utf-16");
    assert.ok(capabilities.inlineCompletionProvider, "vscode-languageclient registers ghost text only for inlineCompletionProvider");
    // The commands the extension wraps exist, and only the rest is left to the client.
    const serverCommands = capabilities.executeCommandProvider?.commands ?? [];
    for (const command of core.WRAPPED_SERVER_COMMANDS) {
      assert.ok(serverCommands.includes(command), `server does not run ${command}: ${JSON.stringify(serverCommands)}`);
    }
    assert.deepEqual(core.commandsForLanguageClient(serverCommands), [core.ServerCommands.applyAction]);
    await connection.sendNotification(InitializedNotification.type, {});

    // ---- status at start: signed out, on the configured cloud ---------------------------
    const first = core.parseStatus(await request(StatusRequest, core.STATUS_PARAMS));
    log(`tandem/status: ${JSON.stringify(first)}`);
    assert.ok(first, "tandem/status answered no Status");
    assert.equal(first.state, "signedOut");
    assert.equal(first.server, CLOUD);
    assert.equal(first.email, null);
    const view = (status, extra = {}) => ({ phase: "running", status, suggestionsOn: true, requestsInFlight: 0, ...extra });
    assert.equal(core.presentStatus(view(first), new Date()).text, "$(sign-in) Tandem: Sign in");
    // The notification the capability asked for comes unprompted.
    await statuses.waitFor((status) => status.state === "signedOut", "signedOut at start");

    // ---- Tandem: Sign In ---------------------------------------------------------------
    signingIn = true;
    const from = statuses.statuses.length;
    const answer = await request(
      ExecuteCommandRequest.type,
      { command: core.ServerCommands.signIn, arguments: [...core.SIGN_IN_ARGUMENTS] },
      "workspace/executeCommand tandem.signIn",
    );
    signingIn = false;
    const started = core.parseSignInStarted(answer);
    log(`tandem.signIn: ${JSON.stringify(answer)}`);
    assert.ok(started, `tandem.signIn answered ${JSON.stringify(answer)}`);
    assert.equal(started.verificationUri, `${CLOUD}/device`);
    assert.ok(started.expiresIn > 0);
    // The extension shows the code and opens the page itself (`clientShowsCode`): the
    // server neither opens the page nor shows the code, so nothing appears twice.
    assert.deepEqual(shownDocuments, [], "the server opened the page itself");
    assert.ok(!messages.some((message) => message.includes(started.userCode)), `the server showed the code too: ${JSON.stringify(messages)}`);
    assert.ok(core.signInPage(started).startsWith(`${CLOUD}/device`), core.signInPage(started));
    const waiting = await statuses.waitFor((status) => status.state === "signingIn", "signingIn", from);
    assert.equal(core.presentStatus(view(waiting), new Date()).text, "$(key) Tandem: Signing in…");

    // Sign In again while the code waits: -32803 with reason inProgress, on which the
    // extension shows the same code; the server shows nothing of its own.
    const messagesBefore = messages.length;
    await assert.rejects(
      request(ExecuteCommandRequest.type, { command: core.ServerCommands.signIn, arguments: [...core.SIGN_IN_ARGUMENTS] }, "second tandem.signIn"),
      (error) => error.code === core.ErrorCodes.requestFailed && core.errorReason(error) === core.SIGN_IN_IN_PROGRESS,
    );
    assert.equal(messages.length, messagesBefore, `the server showed a message: ${JSON.stringify(messages)}`);
    const pending = core.pendingSignIn(started, Date.now());
    assert.equal(core.stillPending(pending, Date.now()), pending);

    // The runner approves the code, as the user would in the browser.
    process.stdout.write(`SIGN_IN_CODE ${started.userCode}\n`);
    log(`waiting for ${started.userCode} to be approved`);
    const ready = await statuses.waitFor(
      (status) => status.state === "ready" && status.email === EXPECTED_EMAIL,
      "ready after the approval",
      from,
      SIGN_IN_TIMEOUT_MS,
    );
    log(`signed in: ${JSON.stringify(ready)}`);
    assert.ok(ready.tier, "the tier is known after signing in");
    const readyText = core.presentStatus(view(ready), new Date()).text;
    assert.ok(readyText.startsWith(`$(check) Tandem: ${ready.tier}`), readyText);
    // The server says who signed in; the message and the status may come in either order.
    await waitUntil(() => messages.some((message) => message.includes(EXPECTED_EMAIL)), () => `a "signed in" message (seen: ${JSON.stringify(messages)})`);

    // ---- typing, and the ghost text ---------------------------------------------------
    const completionsFrom = statuses.statuses.length;
    let text = DOC;
    await connection.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri: DOC_URI, languageId: "python", version: 1, text },
    });
    const at = endPosition(text);
    await connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri: DOC_URI, version: 2 },
      contentChanges: [{ range: { start: at, end: at }, text: "urn" }],
    });
    text += "urn";
    const cursor = endPosition(text);
    // What vscode-languageclient's code2ProtocolConverter makes of VS Code's automatic
    // trigger (VS Code's InlineCompletionTriggerKind.Automatic is 1, LSP's is 2).
    const inlineParams = {
      textDocument: { uri: DOC_URI },
      position: cursor,
      context: { triggerKind: InlineCompletionTriggerKind.Automatic },
    };
    const inline = await request(InlineCompletionRequest.type, inlineParams);
    log(`textDocument/inlineCompletion: ${JSON.stringify(inline)}`);
    const items = Array.isArray(inline) ? inline : inline?.items;
    assert.equal(items?.length, 1, JSON.stringify(inline));
    assert.equal(items[0].insertText, EXPECTED_TEXT);
    assert.deepEqual(items[0].range, { start: cursor, end: cursor });

    // A changed setting reaches the server the way the extension pushes it.
    const changed = core.serverSettings({ server: CLOUD, integers: { debounceMs: 25, requestTimeoutMs: 10000 } });
    assert.deepEqual(core.clearedSettings(settings, changed), [], "a changed value needs no restart");
    await connection.sendNotification(DidChangeConfigurationNotification.type, { settings: { tandem: changed } });
    const again = await request(
      InlineCompletionRequest.type,
      { ...inlineParams, context: { triggerKind: InlineCompletionTriggerKind.Invoked } },
      "textDocument/inlineCompletion after didChangeConfiguration",
    );
    assert.equal((Array.isArray(again) ? again : again?.items)?.[0]?.insertText, EXPECTED_TEXT);

    // The quota the status bar shows is the one the requests used.
    const counted = await statuses.waitFor(
      (status) => status.state === "ready" && !status.busy && status.quota !== null && status.quota.remaining < status.quota.limit,
      "a quota with the completions counted",
      completionsFrom,
    );
    log(`after the completions: ${JSON.stringify(counted)}`);
    if (ready.quota !== null && ready.quota.window === counted.quota.window) {
      assert.ok(counted.quota.remaining < ready.quota.remaining, `${JSON.stringify(ready.quota)} then ${JSON.stringify(counted.quota)}`);
    }
    assert.match(core.presentStatus(view(counted), new Date()).text, new RegExp(` · ${core.formatCount(counted.quota.remaining)} left$`));

    // ---- Tandem: Explain Selection ----------------------------------------------------
    const mean = { start: { line: 0, character: 0 }, end: { line: 1, character: 36 } };
    const explainToken = "tandem-explain-1";
    const pieces = [];
    const streamed = connection.onProgress(new ProgressType(), explainToken, (value) => {
      const piece = core.explainPiece(value);
      assert.notEqual(piece, undefined, `unexpected progress ${JSON.stringify(value)}`);
      pieces.push(piece);
    });
    const busyFrom = statuses.statuses.length;
    const explainParams = core.explainParams({ uri: DOC_URI, selection: mean, cursor: mean.end }, explainToken);
    assert.deepEqual(explainParams, { textDocument: { uri: DOC_URI }, range: mean, partialResultToken: explainToken });
    const explained = core.parseExplainResult(await request(ExplainRequest, explainParams));
    streamed.dispose();
    log(`tandem/explain: ${pieces.length} pieces, result ${JSON.stringify(explained)}`);
    assert.ok(explained);
    assert.equal(explained.markdown, EXPECTED_EXPLANATION);
    assert.ok(pieces.length > 1, `the explanation did not stream: ${JSON.stringify(pieces)}`);
    assert.equal(pieces.join(""), explained.markdown);
    assert.ok(core.explanationDocument(explained).startsWith(`# ${explained.title}\n\n${EXPECTED_EXPLANATION.trimEnd()}`));
    // The spinner: busy while the model wrote, idle after.
    await statuses.waitFor((status) => status.busy === true, "busy during the explanation", busyFrom);
    await statuses.waitFor((status) => status.busy === false, "idle after the explanation", busyFrom);

    // The cursor alone (an empty selection) explains the item around it; Cancel stops it.
    const cancelToken = "tandem-explain-2";
    const source = new CancellationTokenSource();
    let firstPiece;
    const firstPieceArrived = new Promise((resolvePiece) => {
      firstPiece = resolvePiece;
    });
    const cancelledPieces = connection.onProgress(new ProgressType(), cancelToken, () => firstPiece());
    const inside = { line: 1, character: 10 };
    const cursorParams = core.explainParams({ uri: DOC_URI, selection: { start: inside, end: inside }, cursor: inside }, cancelToken);
    assert.deepEqual(cursorParams.position, inside);
    const cancelled = request(ExplainRequest, cursorParams, "cancelled tandem/explain", source.token);
    await withTimeout(firstPieceArrived, "the first piece of the explanation to cancel");
    source.cancel();
    await assert.rejects(cancelled, (error) => error.code === LSPErrorCodes.RequestCancelled);
    cancelledPieces.dispose();

    // ---- Tandem: Sign Out -------------------------------------------------------------
    const outFrom = statuses.statuses.length;
    const signedOut = await request(
      ExecuteCommandRequest.type,
      { command: core.ServerCommands.signOut, arguments: [] },
      "workspace/executeCommand tandem.signOut",
    );
    assert.equal(signedOut, true);
    const after = await statuses.waitFor((status) => status.state === "signedOut", "signedOut after tandem.signOut", outFrom);
    assert.equal(after.email, null);
    assert.equal(
      core.signOutMessage({ signedOut, keyInEditor: false, keyStillInUse: after.state !== "signedOut" }),
      undefined,
      "nothing left to tell after a sign-out that removed the only key",
    );
    const keyless = await request(
      InlineCompletionRequest.type,
      { ...inlineParams, context: { triggerKind: InlineCompletionTriggerKind.Invoked } },
      "textDocument/inlineCompletion signed out",
    );
    assert.deepEqual(Array.isArray(keyless) ? keyless : keyless?.items, [], "no suggestion without a key");

    // ---- shutdown ---------------------------------------------------------------------
    await connection.sendNotification(DidCloseTextDocumentNotification.type, { textDocument: { uri: DOC_URI } });
    await request(ShutdownRequest.type, undefined);
    await connection.sendNotification(ExitNotification.type);
    const { code, signal } = await withTimeout(exited, "process exit after `exit`", 10000);
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.deepEqual(protocolErrors, [], "stdout carried something other than JSON-RPC");
    assert.deepEqual(unreadable, [], "tandem/didChangeStatus carried something that is not a Status");
    log("PASS");
  } catch (error) {
    log(`FAILED: ${error?.stack ?? error}`);
    log(`statuses: ${JSON.stringify(statuses.statuses)}`);
    log(`server stderr (tail):\n${serverStderr() || "<empty>"}`);
    throw error;
  }
});
