// Requests the extension builds and answers it reads (src/core/protocol.ts).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addTandemCapabilities,
  commandsForLanguageClient,
  errorReason,
  explainParams,
  explainParamsFromArgument,
  explainPiece,
  explanationDocument,
  parseExplainResult,
  parseSignInStarted,
  pendingSignIn,
  SIGN_IN_ARGUMENTS,
  SIGN_IN_IN_PROGRESS,
  signInPage,
  signInPrompt,
  signOutMessage,
  stillPending,
  userMessage,
} from "../src/core/protocol";

const URI = "file:///project/example.py";

test("the wrapped server commands are left out of the language client's registration", () => {
  assert.deepEqual(
    commandsForLanguageClient(["tandem.explain", "tandem.applyAction", "tandem.signIn", "tandem.signOut"]),
    ["tandem.applyAction"],
  );
  // A command a newer server adds stays the client's.
  assert.deepEqual(commandsForLanguageClient(["tandem.future"]), ["tandem.future"]);
});

test("the status capability is added without dropping other experimental ones", () => {
  const empty: { experimental?: unknown } = {};
  addTandemCapabilities(empty);
  assert.deepEqual(empty, { experimental: { tandem: { statusNotifications: true } } });

  const other: { experimental?: unknown } = { experimental: { other: 1, tandem: { later: true } } };
  addTandemCapabilities(other);
  assert.deepEqual(other, { experimental: { other: 1, tandem: { later: true, statusNotifications: true } } });

  const malformed: { experimental?: unknown } = { experimental: "x" };
  addTandemCapabilities(malformed);
  assert.deepEqual(malformed, { experimental: { tandem: { statusNotifications: true } } });
});

test("a selection is explained by its range, an empty one by the cursor", () => {
  const selection = { start: { line: 3, character: 0 }, end: { line: 5, character: 10 } };
  assert.deepEqual(explainParams({ uri: URI, selection, cursor: selection.end }), {
    textDocument: { uri: URI },
    range: selection,
  });

  const cursor = { line: 4, character: 7 };
  assert.deepEqual(explainParams({ uri: URI, selection: { start: cursor, end: cursor }, cursor }, "token-1"), {
    textDocument: { uri: URI },
    position: cursor,
    partialResultToken: "token-1",
  });
});

test("a question and diagnostics go along when there are any", () => {
  const cursor = { line: 0, character: 0 };
  const diagnostic = { range: { start: cursor, end: cursor }, message: "unused" };
  const params = explainParams({
    uri: URI,
    selection: { start: cursor, end: cursor },
    cursor,
    question: "  why?  ",
    diagnostics: [diagnostic],
  });
  assert.equal(params.question, "why?");
  assert.deepEqual(params.diagnostics, [diagnostic]);
  const none = explainParams({ uri: URI, selection: { start: cursor, end: cursor }, cursor, question: " ", diagnostics: [] });
  assert.equal("question" in none, false);
  assert.equal("diagnostics" in none, false);
});

test("a code action's tandem.explain argument becomes tandem/explain params", () => {
  const range = { start: { line: 1, character: 0 }, end: { line: 9, character: 1 } };
  const diagnostics = [{ range, message: "E0308" }];
  assert.deepEqual(explainParamsFromArgument({ uri: URI, range, diagnostics }, "t"), {
    textDocument: { uri: URI },
    range,
    diagnostics,
    partialResultToken: "t",
  });
  // Without a range, as the server's own command reads it: the item at 0:0.
  assert.deepEqual(explainParamsFromArgument({ uri: URI }), {
    textDocument: { uri: URI },
    position: { line: 0, character: 0 },
  });
  for (const malformed of [undefined, null, "file:///x", {}, { uri: 3 }, { uri: "" }]) {
    assert.equal(explainParamsFromArgument(malformed), undefined, JSON.stringify(malformed));
  }
});

test("explanation results and streamed pieces are read defensively", () => {
  assert.deepEqual(parseExplainResult({ title: "Explanation of `add`", markdown: "Adds.", provider: "ollama", model: "m" }), {
    title: "Explanation of `add`",
    markdown: "Adds.",
    provider: "ollama",
    model: "m",
  });
  assert.deepEqual(parseExplainResult({ markdown: "Adds." }), { title: "Explanation", markdown: "Adds.", provider: "", model: "" });
  assert.equal(parseExplainResult({ title: "x" }), undefined);
  assert.equal(parseExplainResult(null), undefined);
  assert.equal(explainPiece({ markdown: "piece" }), "piece");
  assert.equal(explainPiece({ kind: "report" }), undefined);
});

test("the explanation document has the server's layout", () => {
  assert.equal(
    explanationDocument({ title: "Explanation of `add`", markdown: "Adds.\n\n", provider: "ollama", model: "qwen" }),
    "# Explanation of `add`\n\nAdds.\n\n---\n*qwen (ollama)*\n",
  );
  assert.equal(explanationDocument({ title: "T", markdown: "M", provider: "", model: "" }), "# T\n\nM\n");
});

test("a sign-in answer is read, and the page with the code filled in is preferred", () => {
  const started = parseSignInStarted({
    userCode: "WDJB-MJHT",
    verificationUri: "http://127.0.0.1:8787/device",
    verificationUriComplete: "http://127.0.0.1:8787/device?user_code=WDJB-MJHT",
    expiresIn: 900,
  });
  assert.ok(started);
  assert.equal(signInPage(started), "http://127.0.0.1:8787/device?user_code=WDJB-MJHT");
  assert.equal(
    signInPrompt(started),
    "Tandem: your sign-in code is WDJB-MJHT. Confirm it at http://127.0.0.1:8787/device.",
  );

  const plain = parseSignInStarted({ userCode: "A-B", verificationUri: "http://x/device", verificationUriComplete: null, expiresIn: 60 });
  assert.ok(plain);
  assert.equal(signInPage(plain), "http://x/device");
  assert.equal(parseSignInStarted({ verificationUri: "http://x/device" }), undefined);
  assert.equal(parseSignInStarted(true), undefined);
});

test("a pending sign-in is shown again until its code expires", () => {
  const started = { userCode: "A-B", verificationUri: "http://x/device", expiresIn: 60 };
  const pending = pendingSignIn(started, 1_000);
  assert.equal(stillPending(pending, 60_999), pending);
  assert.equal(stillPending(pending, 61_000), undefined);
  assert.equal(stillPending(undefined, 0), undefined);
});

test("after signing out the user learns which key is still in use", () => {
  assert.equal(signOutMessage({ signedOut: true, keyInEditor: false, keyStillInUse: false }), undefined);
  assert.equal(signOutMessage({ signedOut: true, keyInEditor: false }), undefined);
  assert.match(signOutMessage({ signedOut: true, keyInEditor: true }) ?? "", /^Tandem: signed out\. The API key set in VS Code/);
  assert.match(
    signOutMessage({ signedOut: true, keyInEditor: false, keyStillInUse: true }) ?? "",
    /TANDEM_API_KEY is still used/,
  );
  assert.equal(signOutMessage({ signedOut: false, keyInEditor: false, keyStillInUse: false }), "Tandem: not signed in with an account.");
  assert.match(signOutMessage({ signedOut: false, keyInEditor: true }) ?? "", /^Tandem: not signed in with an account\. The API key/);
});

test("error messages get the Tandem: prefix once", () => {
  assert.equal(userMessage("put the cursor in a function"), "Tandem: put the cursor in a function");
  assert.equal(userMessage("Tandem: no provider configured"), "Tandem: no provider configured");
  assert.equal(userMessage("  spaced  "), "Tandem: spaced");
});

test("sign-in asks the server to leave the code to the extension, and its refusal is told apart", () => {
  assert.deepEqual(SIGN_IN_ARGUMENTS, [{ clientShowsCode: true }]);
  assert.equal(errorReason({ code: -32803, message: "…", data: { reason: "inProgress" } }), SIGN_IN_IN_PROGRESS);
  assert.equal(errorReason({ code: -32803, message: "…", data: { reason: "cannotStart" } }), "cannotStart");
  assert.equal(errorReason({ code: -32803, message: "an older server" }), undefined);
  assert.equal(errorReason(undefined), undefined);
  assert.equal(errorReason({ data: { reason: 7 } }), undefined);
});
