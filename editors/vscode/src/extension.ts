// Tandem for VS Code: starts the `tandem` language server (`tandem lsp`) through
// vscode-languageclient, whose inline-completion support shows its suggestions as ghost
// text, and adds sign-in, explanations, a Toggle and a status bar item around it.
//
// This file owns the server's lifetime and the settings; client.ts builds the language
// client, statusBar.ts, signIn.ts and explain.ts the UI. Everything that can be decided
// without VS Code is in core/ and unit-tested there.

import * as vscode from "vscode";
import { DidChangeConfigurationNotification, LanguageClient, State } from "vscode-languageclient/node";

import { createClient, requestStatus } from "./client";
import { ErrorCodes } from "./core/protocol";
import {
  clearedSettings,
  executablePath,
  ExtensionSettings,
  INTEGER_SETTINGS,
  IntegerSetting,
  ServerSettings,
  serverSettings,
} from "./core/settings";
import { Status } from "./core/status";
import { EXPLANATION_SCHEME, explain, Explanations } from "./explain";
import { SignIn } from "./signIn";
import { StatusBar } from "./statusBar";

const CONFIGURATION_SECTION = "tandem";
/** Secret storage key of the key from **Tandem: Set API Key**. */
const SECRET_API_KEY = "tandem.apiKey";
/** Global state key of the Toggle; kept across restarts of VS Code. */
const SUGGESTIONS_ON = "tandem.suggestionsOn";
/** When-clause context key mirroring the Toggle, for keybindings users add. */
const SUGGESTIONS_ON_CONTEXT = "tandem.suggestionsOn";

let extensionContext: vscode.ExtensionContext;
let outputChannel: vscode.LogOutputChannel;
let statusBar: StatusBar;
let explanations: Explanations;
let signIn: SignIn;
let client: LanguageClient | undefined;
/** The executable the running client was started with; a change needs a restart. */
let clientExecutable: string | undefined;
/** The initializationOptions the running server was started with. */
let initializationSent: ServerSettings = {};
/** What the server was last told, to skip notifications that change nothing. */
let settingsSent = "";
/** Serialises start/stop so that quick setting changes cannot start two servers. */
let lifecycle: Promise<void> = Promise.resolve();
/** Counts `tandem/didChangeStatus` notifications, so an older `tandem/status` answer loses. */
let statusNotifications = 0;
let statusUnsupportedLogged = false;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionContext = context;
  outputChannel = vscode.window.createOutputChannel("Tandem", { log: true });
  statusBar = new StatusBar(context.globalState.get<boolean>(SUGGESTIONS_ON, true));
  explanations = new Explanations();
  signIn = new SignIn(() => ({
    client,
    outputChannel,
    keyInEditor,
    status: () => statusBar.current.status,
    refreshStatus,
    requestsInFlight: (change) => statusBar.requestsInFlight(change),
  }));
  void vscode.commands.executeCommand("setContext", SUGGESTIONS_ON_CONTEXT, statusBar.current.suggestionsOn);

  context.subscriptions.push(
    outputChannel,
    statusBar,
    explanations,
    vscode.workspace.registerTextDocumentContentProvider(EXPLANATION_SCHEME, explanations),
    vscode.commands.registerCommand("tandem.signIn", () => signIn.signIn()),
    vscode.commands.registerCommand("tandem.signOut", () => signIn.signOut()),
    vscode.commands.registerCommand("tandem.explain", (argument?: unknown) =>
      explain(
        {
          client,
          explanations,
          outputChannel,
          requestsInFlight: (change) => statusBar.requestsInFlight(change),
        },
        argument,
      ),
    ),
    vscode.commands.registerCommand("tandem.toggle", toggleSuggestions),
    vscode.commands.registerCommand("tandem.showMenu", () => statusBar.showMenu()),
    vscode.commands.registerCommand("tandem.setApiKey", setApiKey),
    vscode.commands.registerCommand("tandem.clearApiKey", clearApiKey),
    vscode.commands.registerCommand("tandem.restartServer", () => enqueue(restartClient)),
    vscode.commands.registerCommand("tandem.showOutput", () => outputChannel.show(true)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(CONFIGURATION_SECTION)) {
        void enqueue(syncClientWithSettings);
      }
    }),
    context.secrets.onDidChange((event) => {
      if (event.key === SECRET_API_KEY) {
        void enqueue(pushSettingsToServer);
      }
    }),
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
    outputChannel.error(describeError(error));
  });
  return lifecycle;
}

/** The extension's settings as they stand, for core/settings.ts to turn into the server's. */
async function readSettings(): Promise<ExtensionSettings> {
  const config = configuration();
  const integers: Partial<Record<IntegerSetting, unknown>> = {};
  for (const name of INTEGER_SETTINGS) {
    const inspected = config.inspect<unknown>(name);
    // Only explicitly set values: the defaults shown in the settings UI are the server's.
    integers[name] = inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue;
  }
  return {
    server: config.get<unknown>("server"),
    apiKey: config.get<unknown>("apiKey"),
    storedApiKey: await extensionContext.secrets.get(SECRET_API_KEY),
    integers,
  };
}

async function keyInEditor(): Promise<boolean> {
  const settings = await readSettings();
  return serverSettings({ apiKey: settings.apiKey, storedApiKey: settings.storedApiKey }).apiKey !== undefined;
}

function enabled(): boolean {
  return configuration().get<boolean>("enable", true);
}

async function syncClientWithSettings(): Promise<void> {
  if (!enabled()) {
    await stopClient();
    statusBar.setPhase("disabled");
    return;
  }
  if (client === undefined) {
    await startClient();
  } else if (clientExecutable !== executablePath(configuration().get("path"))) {
    await restartClient();
  } else {
    await pushSettingsToServer();
  }
}

async function startClient(): Promise<void> {
  const command = executablePath(configuration().get("path"));
  const initializationOptions = serverSettings(await readSettings());
  const newClient = createClient(command, initializationOptions, {
    outputChannel,
    suggestionsOn: () => statusBar.current.suggestionsOn,
    enabledLanguages: () => configuration().get<unknown>("enabledLanguages"),
    onStatus,
    requestsInFlight: (change) => statusBar.requestsInFlight(change),
    holdSignInPage: () => signIn.holdSignInPage(),
  });
  newClient.onDidChangeState(({ newState }) => {
    if (client !== newClient) {
      return;
    }
    if (newState === State.Running) {
      statusBar.setPhase("running");
      // After a crash the client starts the server again; its status starts afresh.
      void refreshStatus();
    } else if (newState === State.Starting) {
      statusBar.setPhase("starting");
    } else {
      statusBar.setPhase("failed", "it stopped; see Tandem: Show Output");
    }
  });
  outputChannel.info(`starting ${command} lsp`);
  statusBar.setPhase("starting");
  client = newClient;
  try {
    await newClient.start();
  } catch (error) {
    client = undefined;
    outputChannel.error(`could not start the language server: ${describeError(error)}`);
    statusBar.setPhase("failed", `could not start "${command}"`);
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
    // A client that failed to start cannot be started again; the next attempt makes a new one.
    await newClient.dispose().catch(() => undefined);
    return;
  }
  clientExecutable = command;
  initializationSent = initializationOptions;
  settingsSent = JSON.stringify(initializationOptions);
}

async function stopClient(): Promise<void> {
  const running = client;
  client = undefined;
  clientExecutable = undefined;
  initializationSent = {};
  settingsSent = "";
  if (running !== undefined) {
    await running.dispose(2000).catch((error: unknown) => {
      outputChannel.warn(`error while stopping: ${describeError(error)}`);
    });
  }
}

async function restartClient(): Promise<void> {
  await stopClient();
  if (enabled()) {
    await startClient();
  } else {
    statusBar.setPhase("disabled");
  }
}

/** Tells a running server about new settings, restarting it only when that cannot work. */
async function pushSettingsToServer(): Promise<void> {
  const running = client;
  if (running === undefined || running.state !== State.Running) {
    return;
  }
  const settings = serverSettings(await readSettings());
  const cleared = clearedSettings(initializationSent, settings);
  if (cleared.length > 0) {
    outputChannel.info(`${cleared.join(", ")} cleared; restarting the language server`);
    await restartClient();
    return;
  }
  const serialized = JSON.stringify(settings);
  if (serialized === settingsSent) {
    return;
  }
  settingsSent = serialized;
  await running.sendNotification(DidChangeConfigurationNotification.type, {
    settings: { [CONFIGURATION_SECTION]: settings },
  });
}

function onStatus(status: Status): void {
  statusNotifications += 1;
  statusBar.setStatus(status);
}

/**
 * Asks the server for its Status and shows it, unless a notification brought a newer
 * one meanwhile; answers the newest Status known.
 */
async function refreshStatus(): Promise<Status | undefined> {
  const running = client;
  if (running === undefined || !running.isRunning()) {
    return undefined;
  }
  const seen = statusNotifications;
  try {
    const status = await requestStatus(running);
    if (statusNotifications === seen) {
      statusBar.setStatus(status);
      return status;
    }
    return statusBar.current.status;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === -32601 /* MethodNotFound */) {
      if (!statusUnsupportedLogged) {
        statusUnsupportedLogged = true;
        outputChannel.warn("this tandem does not answer tandem/status; update it to see sign-in state and quota");
      }
    } else if (code !== ErrorCodes.requestCancelled) {
      outputChannel.warn(`tandem/status failed: ${describeError(error)}`);
    }
    return undefined;
  }
}

async function toggleSuggestions(): Promise<void> {
  const on = !statusBar.current.suggestionsOn;
  await extensionContext.globalState.update(SUGGESTIONS_ON, on);
  statusBar.setSuggestionsOn(on);
  void vscode.commands.executeCommand("setContext", SUGGESTIONS_ON_CONTEXT, on);
  if (!on) {
    // Ghost text already on screen goes too.
    void vscode.commands.executeCommand("editor.action.inlineSuggest.hide");
  }
  vscode.window.setStatusBarMessage(`Tandem: inline suggestions ${on ? "on" : "off"}`, 3000);
}

async function setApiKey(): Promise<void> {
  const key = await vscode.window.showInputBox({
    title: "Tandem: Set API Key",
    prompt: "Paste your Tandem API key. It is kept in VS Code's secret storage.",
    placeHolder: "tdm_…",
    password: true,
    ignoreFocusOut: true,
    validateInput: (value) => (value.trim().startsWith("tdm_") ? undefined : "Tandem API keys start with tdm_"),
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

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
