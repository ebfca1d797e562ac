// The language client for `tandem lsp`: vscode-languageclient's LanguageClient, which
// implements LSP 3.18 `textDocument/inlineCompletion` itself (VS Code's ghost text), with
// three Tandem additions:
//
// - the server's `tandem.signIn`, `tandem.signOut` and `tandem.explain` commands are not
//   registered by the client, because the extension registers VS Code commands with those
//   very ids that wrap them (ServerCommandsFeature below);
// - the client asks for `tandem/didChangeStatus` and hands each Status on (StatusFeature);
// - middleware: automatic suggestions follow Toggle and `tandem.enabledLanguages`, the
//   suggest widget gets no duplicate of the ghost text, and the sign-in page waits for
//   the user's click instead of opening by itself.

import * as vscode from "vscode";
import {
  ClientCapabilities,
  DynamicFeature,
  ExecuteCommandRegistrationOptions,
  ExecuteCommandRequest,
  FeatureState,
  InitializeParams,
  LanguageClient,
  LanguageClientOptions,
  RegistrationData,
  RegistrationType,
  ServerCapabilities,
  ServerOptions,
  StaticFeature,
  DocumentSelector,
} from "vscode-languageclient/node";

import {
  addTandemCapabilities,
  commandsForLanguageClient,
  Methods,
  SERVER_ARGS,
  STATUS_PARAMS,
} from "./core/protocol";
import { ServerSettings, shouldSuggest } from "./core/settings";
import { parseStatus, Status } from "./core/status";

/** The documents the server gets: files on disk and unsaved editors. */
export const DOCUMENT_SELECTOR: DocumentSelector = [{ scheme: "file" }, { scheme: "untitled" }];

/**
 * vscode-languageclient's ExecuteCommandFeature registers every command the server
 * lists in `executeCommandProvider` as a VS Code command. The extension registers
 * `tandem.signIn`, `tandem.signOut` and `tandem.explain` itself (they show a code, a
 * preview, progress), and VS Code refuses a second command with the same id, so this
 * wrapper hands the feature the server's list without those (`commandsForLanguageClient`).
 * Giving the extension's commands other ids would have worked too, but then the code
 * actions the server offers (which carry `tandem.explain`) would bypass the extension's
 * UI, and the Command Palette would show two "Sign In"s. `tandem.applyAction` stays the
 * client's.
 */
class ServerCommandsFeature implements DynamicFeature<ExecuteCommandRegistrationOptions> {
  readonly fillInitializeParams?: (params: InitializeParams) => void;

  constructor(private readonly inner: DynamicFeature<ExecuteCommandRegistrationOptions>) {
    this.fillInitializeParams = inner.fillInitializeParams?.bind(inner);
  }

  get registrationType(): RegistrationType<ExecuteCommandRegistrationOptions> {
    return this.inner.registrationType;
  }

  fillClientCapabilities(capabilities: ClientCapabilities): void {
    this.inner.fillClientCapabilities(capabilities);
  }

  preInitialize(capabilities: ServerCapabilities, documentSelector: DocumentSelector | undefined): void {
    this.inner.preInitialize?.(capabilities, documentSelector);
  }

  initialize(capabilities: ServerCapabilities, documentSelector: DocumentSelector | undefined): void {
    const provider = capabilities.executeCommandProvider;
    const filtered: ServerCapabilities =
      provider === undefined
        ? capabilities
        : {
            ...capabilities,
            executeCommandProvider: { ...provider, commands: commandsForLanguageClient(provider.commands) },
          };
    this.inner.initialize(filtered, documentSelector);
  }

  getState(): FeatureState {
    return this.inner.getState();
  }

  register(data: RegistrationData<ExecuteCommandRegistrationOptions>): void {
    this.inner.register({
      ...data,
      registerOptions: {
        ...data.registerOptions,
        commands: commandsForLanguageClient(data.registerOptions.commands ?? []),
      },
    });
  }

  unregister(id: string): void {
    this.inner.unregister(id);
  }

  clear(): void {
    this.inner.clear();
  }
}

/** LanguageClient whose built-in ExecuteCommandFeature is wrapped in ServerCommandsFeature. */
class TandemLanguageClient extends LanguageClient {
  // Called from the base constructor for each built-in feature, so it must not touch
  // fields of this class (they are not initialised yet).
  override registerFeature(feature: StaticFeature | DynamicFeature<unknown>): void {
    if (DynamicFeature.is(feature) && feature.registrationType.method === ExecuteCommandRequest.method) {
      super.registerFeature(new ServerCommandsFeature(feature as DynamicFeature<ExecuteCommandRegistrationOptions>));
      return;
    }
    super.registerFeature(feature);
  }
}

/**
 * Opts in to `tandem/didChangeStatus` (`experimental.tandem.statusNotifications`) and
 * passes every Status it carries on.
 */
class StatusFeature implements StaticFeature {
  private subscription: vscode.Disposable | undefined;

  constructor(
    private readonly client: LanguageClient,
    private readonly onStatus: (status: Status) => void,
  ) {}

  fillClientCapabilities(capabilities: ClientCapabilities): void {
    addTandemCapabilities(capabilities);
  }

  initialize(): void {
    this.subscription?.dispose();
    this.subscription = this.client.onNotification(Methods.didChangeStatus, (params: unknown) => {
      const status = parseStatus(params);
      if (status !== undefined) {
        this.onStatus(status);
      }
    });
  }

  getState(): FeatureState {
    return { kind: "static" };
  }

  clear(): void {
    this.subscription?.dispose();
    this.subscription = undefined;
  }
}

/** What the client asks of the rest of the extension. */
export interface ClientHooks {
  outputChannel: vscode.LogOutputChannel;
  /** Toggle: automatic suggestions on. */
  suggestionsOn(): boolean;
  /** `tandem.enabledLanguages`. */
  enabledLanguages(): unknown;
  /** A Status from `tandem/didChangeStatus`. */
  onStatus(status: Status): void;
  /** A request of the extension to the server started (`+1`) or ended (`-1`). */
  requestsInFlight(change: 1 | -1): void;
  /**
   * Whether the server's `window/showDocument` of this external page should wait for the
   * user: while the extension starts a sign-in it shows the code with a "Copy code and
   * open browser" action, so the page opens after the code is on the clipboard.
   */
  holdSignInPage(uri: string): boolean;
}

export function createClient(
  command: string,
  initializationOptions: ServerSettings,
  hooks: ClientHooks,
): LanguageClient {
  const serverOptions: ServerOptions = {
    // The arguments are given in full instead of `transport: TransportKind.stdio`, which
    // would append `--stdio`.
    run: { command, args: [...SERVER_ARGS] },
    debug: {
      command,
      args: [...SERVER_ARGS],
      options: { env: { ...process.env, TANDEM_LOG: "debug" } },
    },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: DOCUMENT_SELECTOR,
    initializationOptions,
    outputChannel: hooks.outputChannel,
    middleware: {
      // The server also answers `textDocument/completion`, for editors without inline
      // completion. In VS Code the same suggestion already shows as ghost text; listing
      // it in the suggest widget as well would only duplicate it.
      provideCompletionItem: () => undefined,
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        const ask = shouldSuggest({
          languageId: document.languageId,
          enabledLanguages: hooks.enabledLanguages(),
          suggestionsOn: hooks.suggestionsOn(),
          explicit: context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke,
        });
        if (!ask) {
          return undefined;
        }
        hooks.requestsInFlight(1);
        try {
          // `next` forwards VS Code's token: typing on sends `$/cancelRequest`, and
          // ContentModified / RequestCancelled answers end as "no suggestion".
          return await next(document, position, context, token);
        } finally {
          hooks.requestsInFlight(-1);
        }
      },
      window: {
        showDocument: async (params, token, next) => {
          if (params.external === true && hooks.holdSignInPage(params.uri)) {
            // Not shown (yet): the extension opens it when the user clicks.
            return { success: false };
          }
          return next(params, token);
        },
      },
    },
  };
  const client = new TandemLanguageClient("tandem", "Tandem", serverOptions, clientOptions);
  client.registerFeature(new StatusFeature(client, hooks.onStatus));
  return client;
}

/** Asks for the current Status; `undefined` from a server without `tandem/status`. */
export async function requestStatus(client: LanguageClient): Promise<Status | undefined> {
  const answer: unknown = await client.sendRequest(Methods.status, STATUS_PARAMS);
  return parseStatus(answer);
}
