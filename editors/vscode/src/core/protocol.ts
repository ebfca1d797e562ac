// The Tandem-specific part of what the extension says to `tandem lsp`, without VS Code:
// method and command names, the client capability it adds, and the params and results of
// the requests it sends itself (docs/editors/PROTOCOL.md is the contract). The
// integration test in tests/clients/vscode-jsonrpc builds its requests with this module,
// so what it checks against the real server is what the extension sends.

/** Custom methods (PROTOCOL.md). */
export const Methods = {
  status: "tandem/status",
  didChangeStatus: "tandem/didChangeStatus",
  explain: "tandem/explain",
} as const;

/**
 * Params of `tandem/status`. PROTOCOL.md allows `null` or `{}`; `{}` it is, because
 * vscode-jsonrpc sends a lone `null` parameter as the array `[null]`.
 */
export const STATUS_PARAMS: Readonly<Record<string, never>> = Object.freeze({});

/** How the extension starts the server: `tandem lsp`, LSP over stdio. */
export const SERVER_ARGS: readonly string[] = Object.freeze(["lsp"]);

/** Commands the server runs through `workspace/executeCommand` (PROTOCOL.md, "Commands"). */
export const ServerCommands = {
  signIn: "tandem.signIn",
  signOut: "tandem.signOut",
  explain: "tandem.explain",
  applyAction: "tandem.applyAction",
} as const;

/**
 * Server commands the extension registers under the same VS Code command id, wrapping
 * them with its own UI (the sign-in code prompt, the explanation preview). The language
 * client must not register these itself: VS Code refuses a second command with one id.
 * Code actions that carry `tandem.explain` then run the extension's wrapper too.
 */
export const WRAPPED_SERVER_COMMANDS: readonly string[] = [
  ServerCommands.signIn,
  ServerCommands.signOut,
  ServerCommands.explain,
];

/** The server's commands the language client should register as VS Code commands. */
export function commandsForLanguageClient(serverCommands: readonly string[]): string[] {
  return serverCommands.filter((command) => !WRAPPED_SERVER_COMMANDS.includes(command));
}

/**
 * The argument of `tandem.signIn`: the extension shows the code and opens the page
 * itself (with "Copy code and open browser"), so the server does neither.
 */
export const SIGN_IN_ARGUMENTS: readonly unknown[] = Object.freeze([Object.freeze({ clientShowsCode: true })]);

/** `data.reason` of a `tandem.signIn` that could not start because one already waits. */
export const SIGN_IN_IN_PROGRESS = "inProgress";

/** The `data.reason` of a JSON-RPC error, if it has one. */
export function errorReason(error: unknown): string | undefined {
  const data = (error as { data?: unknown } | null | undefined)?.data;
  if (typeof data === "object" && data !== null && typeof (data as { reason?: unknown }).reason === "string") {
    return (data as { reason: string }).reason;
  }
  return undefined;
}

/** JSON-RPC error codes the extension tells apart. */
export const ErrorCodes = {
  requestCancelled: -32800,
  contentModified: -32801,
  /** `tandem.signIn` could not start; `data.reason` says why (PROTOCOL.md). */
  requestFailed: -32803,
} as const;

/**
 * Adds `experimental.tandem.statusNotifications: true` to client capabilities, keeping
 * whatever else `experimental` holds.
 */
export function addTandemCapabilities(capabilities: { experimental?: unknown }): void {
  const experimental =
    typeof capabilities.experimental === "object" && capabilities.experimental !== null
      ? (capabilities.experimental as Record<string, unknown>)
      : {};
  const tandem =
    typeof experimental.tandem === "object" && experimental.tandem !== null
      ? (experimental.tandem as Record<string, unknown>)
      : {};
  capabilities.experimental = {
    ...experimental,
    tandem: { ...tandem, statusNotifications: true },
  };
}

/** LSP `Position`, in UTF-16 code units like VS Code itself. */
export interface Position {
  line: number;
  character: number;
}

/** LSP `Range`. */
export interface Range {
  start: Position;
  end: Position;
}

export function isEmptyRange(range: Range): boolean {
  return range.start.line === range.end.line && range.start.character === range.end.character;
}

/** Params of `tandem/explain`. */
export interface ExplainParams {
  textDocument: { uri: string };
  range?: Range;
  position?: Position;
  question?: string;
  diagnostics?: unknown[];
  partialResultToken?: string;
}

/** What the user pointed at in an editor. */
export interface ExplainTarget {
  uri: string;
  /** The selection; an empty one means the item under the cursor. */
  selection: Range;
  /** Where the cursor is (the selection's active end). */
  cursor: Position;
  question?: string;
  /** The problems the editor reports in the selection, as LSP diagnostics. */
  diagnostics?: unknown[];
}

/**
 * `tandem/explain` params for a selection: the range when something is selected, else
 * the cursor, whose item the server explains. `partialResultToken` asks for the text as
 * it streams (`$/progress` with `{markdown}` pieces).
 */
export function explainParams(target: ExplainTarget, partialResultToken?: string): ExplainParams {
  const params: ExplainParams = { textDocument: { uri: target.uri } };
  if (isEmptyRange(target.selection)) {
    params.position = target.cursor;
  } else {
    params.range = target.selection;
  }
  const question = target.question?.trim();
  if (question) {
    params.question = question;
  }
  if (target.diagnostics !== undefined && target.diagnostics.length > 0) {
    params.diagnostics = target.diagnostics;
  }
  if (partialResultToken !== undefined) {
    params.partialResultToken = partialResultToken;
  }
  return params;
}

function isPosition(value: unknown): value is Position {
  const position = value as Position | null;
  return (
    typeof position === "object" &&
    position !== null &&
    Number.isInteger(position.line) &&
    Number.isInteger(position.character)
  );
}

function isRange(value: unknown): value is Range {
  const range = value as Range | null;
  return typeof range === "object" && range !== null && isPosition(range.start) && isPosition(range.end);
}

/**
 * `tandem/explain` params from the argument of a `tandem.explain` command, as the
 * server's "Tandem: Explain …" code actions carry it: `{uri, range?, question?,
 * diagnostics?}`. `undefined` when the argument is not of that shape.
 */
export function explainParamsFromArgument(
  argument: unknown,
  partialResultToken?: string,
): ExplainParams | undefined {
  if (typeof argument !== "object" || argument === null) {
    return undefined;
  }
  const { uri, range, question, diagnostics } = argument as Record<string, unknown>;
  if (typeof uri !== "string" || uri === "") {
    return undefined;
  }
  const start = isRange(range) ? range.start : { line: 0, character: 0 };
  return explainParams(
    {
      uri,
      selection: isRange(range) ? range : { start, end: start },
      cursor: start,
      question: typeof question === "string" ? question : undefined,
      diagnostics: Array.isArray(diagnostics) ? diagnostics : undefined,
    },
    partialResultToken,
  );
}

/** The result of `tandem/explain`. */
export interface ExplainResult {
  title: string;
  markdown: string;
  provider: string;
  model: string;
}

export function parseExplainResult(value: unknown): ExplainResult | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const { title, markdown, provider, model } = value as Record<string, unknown>;
  if (typeof markdown !== "string") {
    return undefined;
  }
  return {
    title: typeof title === "string" && title !== "" ? title : "Explanation",
    markdown,
    provider: typeof provider === "string" ? provider : "",
    model: typeof model === "string" ? model : "",
  };
}

/** A streamed piece of an explanation (`$/progress` value for the partial-result token). */
export function explainPiece(value: unknown): string | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const markdown = (value as Record<string, unknown>).markdown;
  return typeof markdown === "string" ? markdown : undefined;
}

/**
 * The Markdown document an explanation is shown as: the same layout as the file the
 * server writes for clients that let it show the explanation itself.
 */
export function explanationDocument(result: ExplainResult): string {
  const origin = [result.model, result.provider && `(${result.provider})`].filter(Boolean).join(" ");
  const footer = origin === "" ? "" : `\n\n---\n*${origin}*`;
  return `# ${result.title}\n\n${result.markdown.trimEnd()}${footer}\n`;
}

/** The document shown while an explanation streams in. */
export function streamingExplanationDocument(title: string, markdownSoFar: string): string {
  return `# ${title}\n\n${markdownSoFar}\n\n*…*\n`;
}

/**
 * An error message for a notification: `Tandem: ` in front, once. Many of the server's
 * messages (those it also shows itself) already start with it.
 */
export function userMessage(message: string): string {
  const trimmed = message.trim();
  return /^Tandem:/.test(trimmed) ? trimmed : `Tandem: ${trimmed}`;
}

/** The answer of `tandem.signIn`. */
export interface SignInStarted {
  userCode: string;
  verificationUri: string;
  verificationUriComplete?: string;
  /** Seconds the code stays valid. */
  expiresIn: number;
}

export function parseSignInStarted(value: unknown): SignInStarted | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const { userCode, verificationUri, verificationUriComplete, expiresIn } = value as Record<
    string,
    unknown
  >;
  if (typeof userCode !== "string" || userCode === "" || typeof verificationUri !== "string") {
    return undefined;
  }
  const started: SignInStarted = {
    userCode,
    verificationUri,
    expiresIn: typeof expiresIn === "number" && expiresIn > 0 ? expiresIn : 0,
  };
  if (typeof verificationUriComplete === "string" && verificationUriComplete !== "") {
    started.verificationUriComplete = verificationUriComplete;
  }
  return started;
}

/** The page to open for a sign-in: the one with the code filled in, when there is one. */
export function signInPage(started: SignInStarted): string {
  return started.verificationUriComplete ?? started.verificationUri;
}

/** What the notification for a started sign-in says. */
export function signInPrompt(started: SignInStarted): string {
  return `Tandem: your sign-in code is ${started.userCode}. Confirm it at ${started.verificationUri}.`;
}

/** Where the key in use comes from, as far as the extension can tell after a sign-out. */
export interface SignOutOutcome {
  /** `tandem.signOut`'s answer: the credentials file was deleted. */
  signedOut: boolean;
  /** A key is set in VS Code (secret storage or `tandem.apiKey`). */
  keyInEditor: boolean;
  /** The server still has a key (its status is not `signedOut`); `undefined` if unknown. */
  keyStillInUse?: boolean;
}

/**
 * What to tell the user after `tandem.signOut`; `undefined` when the server's own message
 * ("signed out of …") says everything.
 */
export function signOutMessage(outcome: SignOutOutcome): string | undefined {
  const first = outcome.signedOut ? "Tandem: signed out." : "Tandem: not signed in with an account.";
  if (outcome.keyInEditor) {
    return `${first} The API key set in VS Code is still used: remove it with Tandem: Clear Stored API Key or from tandem.apiKey.`;
  }
  if (outcome.keyStillInUse === true) {
    return `${first} The key from TANDEM_API_KEY is still used until you remove it from the environment VS Code starts with.`;
  }
  return outcome.signedOut ? undefined : first;
}

/** The sign-in the extension started and whose code it can show again. */
export interface PendingSignIn {
  started: SignInStarted;
  /** When the code stops working, in milliseconds since the epoch. */
  expiresAt: number;
}

export function pendingSignIn(started: SignInStarted, now: number): PendingSignIn {
  return { started, expiresAt: now + started.expiresIn * 1000 };
}

/**
 * The pending sign-in to show again when `tandem.signIn` refuses to start another one
 * (error -32803 while a code waits); `undefined` when there is none or it expired.
 */
export function stillPending(pending: PendingSignIn | undefined, now: number): PendingSignIn | undefined {
  return pending !== undefined && pending.expiresAt > now ? pending : undefined;
}
