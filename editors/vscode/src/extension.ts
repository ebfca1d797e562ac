// Tandem for VS Code: starts the `tandem` language server and shows its suggestions as
// inline (ghost text) completions.
//
// The server speaks LSP over stdio. vscode-languageclient 9 does document sync, process
// lifetime and logging; inline completion (LSP 3.18) is only a "proposed" feature in that
// release, so this file registers its own InlineCompletionItemProvider and sends the request
// itself, with the exact 3.18 parameter shape the server expects.

import * as vscode from "vscode";
import {
  CancellationToken as ProtocolCancellationToken,
  DidChangeConfigurationNotification,
  ErrorCodes,
  LanguageClient,
  LanguageClientOptions,
  LSPErrorCodes,
  ResponseError,
  RequestType,
  ServerOptions,
  State,
} from "vscode-languageclient/node";

const CONFIGURATION_SECTION = "tandem";
const SECRET_API_KEY = "tandem.apiKey";
const INLINE_COMPLETION_METHOD = "textDocument/inlineCompletion";

/** LSP 3.18 `Position` / `Range`, in UTF-16 code units like VS Code itself. */
interface ProtocolPosition {
  line: number;
  character: number;
}
interface ProtocolRange {
  start: ProtocolPosition;
  end: ProtocolPosition;
}

/** LSP 3.18 `InlineCompletionParams`. */
interface InlineCompletionParams {
  textDocument: { uri: string };
  position: ProtocolPosition;
  context: {
    /** 1 = invoked explicitly, 2 = automatic (LSP numbering, not VS Code's). */
    triggerKind: 1 | 2;
    selectedCompletionInfo?: { range: ProtocolRange; text: string };
  };
}

/** LSP 3.18 `InlineCompletionItem`; `insertText` may be a snippet `StringValue`. */
interface ProtocolInlineCompletionItem {
  insertText: string | { kind: "snippet"; value: string };
  filterText?: string;
  range?: ProtocolRange;
}

/** The spec allows a list or a bare array; the Tandem server sends the list form. */
type InlineCompletionResult =
  | { items: ProtocolInlineCompletionItem[] }
  | ProtocolInlineCompletionItem[]
  | null;

const inlineCompletionRequest = new RequestType<
  InlineCompletionParams,
  InlineCompletionResult,
  void
>(INLINE_COMPLETION_METHOD);

/**
 * The server's `initializationOptions`; `workspace/didChangeConfiguration` carries the same
 * object under the `tandem` key of `settings`.
 */
interface ServerSettings {
  server?: string;
  apiKey?: string;
  maxPrefixChars?: number;
  maxSuffixChars?: number;
  maxContextTokens?: number;
  requestTimeoutMs?: number;
}

let extensionContext: vscode.ExtensionContext;
let outputChannel: vscode.OutputChannel;
let client: LanguageClient | undefined;
/** The executable the running client was started with; a change needs a restart. */
let clientExecutable: string | undefined;
/** The initializationOptions the running server was started with. */
let initializationSent: ServerSettings = {};
/** Serialises start/stop so that quick setting changes cannot start two servers. */
let lifecycle: Promise<void> = Promise.resolve();

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionContext = context;
  outputChannel = vscode.window.createOutputChannel("Tandem");
  context.subscriptions.push(outputChannel);

  context.subscriptions.push(
    vscode.commands.registerCommand("tandem.setApiKey", setApiKey),
    vscode.commands.registerCommand("tandem.clearApiKey", clearApiKey),
    vscode.commands.registerCommand("tandem.restartServer", () => enqueue(restartClient)),
    vscode.commands.registerCommand("tandem.showOutput", () => outputChannel.show(true)),
    vscode.workspace.onDidChangeConfiguration(onConfigurationChanged),
    context.secrets.onDidChange((event) => {
      if (event.key === SECRET_API_KEY) {
        void enqueue(pushSettingsToServer);
      }
    }),
    vscode.languages.registerInlineCompletionItemProvider(
      // The same documents the language client syncs to the server.
      [{ scheme: "file" }, { scheme: "untitled" }],
      { provideInlineCompletionItems },
    ),
  );

  await enqueue(syncClientWithSettings);
}

export async function deactivate(): Promise<void> {
  await enqueue(stopClient);
}

function configuration(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration(CONFIGURATION_SECTION);
}

function enqueue(step: () => Promise<void>): Promise<void> {
  lifecycle = lifecycle.then(step, step).catch((error: unknown) => {
    outputChannel.appendLine(`[tandem] ${describeError(error)}`);
  });
  return lifecycle;
}

/** Builds the settings object; empty values are left out so the server's own fallbacks apply. */
async function serverSettings(): Promise<ServerSettings> {
  const config = configuration();
  const settings: ServerSettings = {};

  const server = config.get<string>("server", "").trim();
  if (server !== "") {
    settings.server = server;
  }

  // The secret store wins over settings.json: a key typed into the settings file is
  // readable by anything that syncs or backs up that file.
  const storedKey = (await extensionContext.secrets.get(SECRET_API_KEY))?.trim();
  const settingsKey = config.get<string>("apiKey", "").trim();
  const apiKey = storedKey || settingsKey;
  if (apiKey) {
    settings.apiKey = apiKey;
  }

  for (const name of [
    "maxPrefixChars",
    "maxSuffixChars",
    "maxContextTokens",
    "requestTimeoutMs",
  ] as const) {
    const inspected = config.inspect<number>(name);
    // Only explicitly set values are sent, so the server's documented defaults stay in charge.
    const value =
      inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue;
    if (typeof value === "number" && Number.isFinite(value)) {
      settings[name] = value;
    }
  }
  return settings;
}

function executablePath(): string {
  const configured = configuration().get<string>("path", "tandem").trim();
  return configured === "" ? "tandem" : configured;
}

async function syncClientWithSettings(): Promise<void> {
  const enabled = configuration().get<boolean>("enable", true);
  if (!enabled) {
    await stopClient();
    return;
  }
  if (client === undefined) {
    await startClient();
  } else if (clientExecutable !== executablePath()) {
    await restartClient();
  } else {
    await pushSettingsToServer();
  }
}

async function startClient(): Promise<void> {
  const command = executablePath();
  const serverOptions: ServerOptions = {
    // `--stdio` is passed explicitly instead of `transport: TransportKind.stdio`, which
    // would append its own copy of the flag.
    run: { command, args: ["--stdio"] },
    debug: { command, args: ["--stdio"], options: { env: { ...process.env, TANDEM_LOG: "debug" } } },
  };
  const initializationOptions = await serverSettings();
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions,
    outputChannel,
    middleware: {
      // The server also answers `textDocument/completion` for editors without inline
      // completion. Here the same suggestion already shows as ghost text, so listing it
      // again in the suggest widget would only duplicate it.
      provideCompletionItem: () => undefined,
    },
  };

  const newClient = new LanguageClient("tandem", "Tandem", serverOptions, clientOptions);
  outputChannel.appendLine(`[tandem] starting ${command} --stdio`);
  try {
    await newClient.start();
  } catch (error) {
    outputChannel.appendLine(`[tandem] could not start the language server: ${describeError(error)}`);
    void vscode.window
      .showErrorMessage(
        `Tandem: could not start "${command}". Install the tandem binary or set "tandem.path".`,
        "Open Settings",
        "Show Output",
      )
      .then((choice) => {
        if (choice === "Open Settings") {
          void vscode.commands.executeCommand("workbench.action.openSettings", "tandem.path");
        } else if (choice === "Show Output") {
          outputChannel.show(true);
        }
      });
    // A client that failed to start cannot be restarted; drop it so the next attempt is fresh.
    await newClient.dispose().catch(() => undefined);
    return;
  }
  client = newClient;
  clientExecutable = command;
  initializationSent = initializationOptions;
}

async function stopClient(): Promise<void> {
  const running = client;
  client = undefined;
  clientExecutable = undefined;
  initializationSent = {};
  if (running !== undefined) {
    await running.dispose(2000).catch((error: unknown) => {
      outputChannel.appendLine(`[tandem] error while stopping: ${describeError(error)}`);
    });
  }
}

async function restartClient(): Promise<void> {
  await stopClient();
  if (configuration().get<boolean>("enable", true)) {
    await startClient();
  }
}

function onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
  if (event.affectsConfiguration(CONFIGURATION_SECTION)) {
    void enqueue(syncClientWithSettings);
  }
}

/** Tells a running server about new settings, restarting it only when that cannot work. */
async function pushSettingsToServer(): Promise<void> {
  const running = client;
  if (running === undefined || running.state !== State.Running) {
    return;
  }
  const settings = await serverSettings();
  // The server layers didChangeConfiguration over initializationOptions, so clearing a value
  // given at start would fall back to that old value; only a restart really clears it.
  const cleared = (Object.keys(initializationSent) as (keyof ServerSettings)[]).some(
    (name) => settings[name] === undefined,
  );
  if (cleared) {
    outputChannel.appendLine("[tandem] a setting was cleared; restarting the language server");
    await restartClient();
    return;
  }
  await running.sendNotification(DidChangeConfigurationNotification.type, {
    settings: { [CONFIGURATION_SECTION]: settings },
  });
}

async function setApiKey(): Promise<void> {
  const key = await vscode.window.showInputBox({
    title: "Tandem: Set API Key",
    prompt: "Paste your Tandem API key. It is kept in VS Code's secret storage.",
    placeHolder: "tdm_…",
    password: true,
    ignoreFocusOut: true,
    validateInput: (value) =>
      value.trim().startsWith("tdm_") ? undefined : "Tandem API keys start with tdm_",
  });
  if (key === undefined) {
    return;
  }
  // The secret-change listener forwards the key to a running server.
  await extensionContext.secrets.store(SECRET_API_KEY, key.trim());
  if (configuration().get<string>("apiKey", "").trim() !== "") {
    void vscode.window.showInformationMessage(
      'Tandem: API key stored. You can now remove the plain-text "tandem.apiKey" from your settings.',
    );
  } else {
    void vscode.window.showInformationMessage("Tandem: API key stored.");
  }
}

async function clearApiKey(): Promise<void> {
  await extensionContext.secrets.delete(SECRET_API_KEY);
  void vscode.window.showInformationMessage("Tandem: stored API key removed.");
}

async function provideInlineCompletionItems(
  document: vscode.TextDocument,
  position: vscode.Position,
  context: vscode.InlineCompletionContext,
  token: vscode.CancellationToken,
): Promise<vscode.InlineCompletionItem[] | undefined> {
  const running = client;
  if (
    running === undefined ||
    running.state !== State.Running ||
    !configuration().get<boolean>("enable", true) ||
    // Only documents the client syncs exist on the server side.
    (document.uri.scheme !== "file" && document.uri.scheme !== "untitled")
  ) {
    return undefined;
  }

  const toProtocol = running.code2ProtocolConverter;
  const params: InlineCompletionParams = {
    textDocument: { uri: toProtocol.asUri(document.uri) },
    position: toProtocol.asPosition(position),
    context: {
      // VS Code numbers trigger kinds from 0 (Invoke = 0, Automatic = 1); LSP from 1.
      triggerKind: context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? 1 : 2,
    },
  };
  if (context.selectedCompletionInfo !== undefined) {
    params.context.selectedCompletionInfo = {
      range: toProtocol.asRange(context.selectedCompletionInfo.range),
      text: context.selectedCompletionInfo.text,
    };
  }

  let result: InlineCompletionResult;
  try {
    // The token is forwarded so that typing on sends `$/cancelRequest` for stale requests.
    result = await running.sendRequest(
      inlineCompletionRequest,
      params,
      token as ProtocolCancellationToken,
    );
  } catch (error) {
    if (!token.isCancellationRequested && !isExpectedCancellation(error)) {
      outputChannel.appendLine(`[tandem] inline completion failed: ${describeError(error)}`);
    }
    return undefined;
  }
  if (token.isCancellationRequested || result === null || result === undefined) {
    return undefined;
  }

  const items = Array.isArray(result) ? result : result.items ?? [];
  return items.map((item) => {
    const insertText =
      typeof item.insertText === "string"
        ? item.insertText
        : new vscode.SnippetString(item.insertText.value);
    const range =
      item.range !== undefined ? running.protocol2CodeConverter.asRange(item.range) : undefined;
    const converted = new vscode.InlineCompletionItem(insertText, range);
    if (item.filterText !== undefined) {
      converted.filterText = item.filterText;
    }
    return converted;
  });
}

/** Cancelled and superseded requests are a normal part of typing, not something to log. */
function isExpectedCancellation(error: unknown): boolean {
  return (
    error instanceof ResponseError &&
    (error.code === LSPErrorCodes.RequestCancelled ||
      error.code === LSPErrorCodes.ContentModified ||
      error.code === ErrorCodes.ConnectionInactive)
  );
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
