// Tandem: Sign In and Tandem: Sign Out, around the server's `tandem.signIn` and
// `tandem.signOut` commands (docs/editors/PROTOCOL.md). The server runs the device flow
// and saves the key; the extension shows the code with a "Copy code and open browser"
// action and opens the page when it is clicked.

import * as vscode from "vscode";
import { ExecuteCommandRequest, LanguageClient } from "vscode-languageclient/node";

import {
  errorReason,
  parseSignInStarted,
  PendingSignIn,
  pendingSignIn,
  ServerCommands,
  SIGN_IN_ARGUMENTS,
  SIGN_IN_IN_PROGRESS,
  signInPage,
  signInPrompt,
  signOutMessage,
  stillPending,
  userMessage,
} from "./core/protocol";
import { Status } from "./core/status";

const COPY_AND_OPEN = "Copy code and open browser";

export interface SignInContext {
  client: LanguageClient | undefined;
  outputChannel: vscode.LogOutputChannel;
  /** A key set in VS Code (secret storage or `tandem.apiKey`), which wins over a sign-in. */
  keyInEditor(): Promise<boolean>;
  /** The last Status, if the server reports one. */
  status(): Status | undefined;
  /** Asks the server for its Status now. */
  refreshStatus(): Promise<Status | undefined>;
  requestsInFlight(change: 1 | -1): void;
}

function runningClient(context: SignInContext): LanguageClient | undefined {
  const client = context.client;
  if (client === undefined || !client.isRunning()) {
    void vscode.window.showWarningMessage("Tandem: the language server is not running.");
    return undefined;
  }
  return client;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs the device flow through the server; see the module comment. */
export class SignIn {
  /** The sign-in whose code was shown last, to show again while it waits. */
  private pending: PendingSignIn | undefined;
  /** True while `tandem.signIn` is on its way: its `window/showDocument` waits for the user. */
  private starting = false;

  constructor(private readonly context: () => SignInContext) {}

  /** For the client's `window/showDocument` middleware. */
  holdSignInPage(): boolean {
    return this.starting;
  }

  async signIn(): Promise<void> {
    const context = this.context();
    const client = runningClient(context);
    if (client === undefined) {
      return;
    }
    if (await context.keyInEditor()) {
      const choice = await vscode.window.showWarningMessage(
        "Tandem: an API key is set in VS Code (Set API Key or tandem.apiKey). It stays in use after you sign in; clear it to use the account you sign in with.",
        "Sign in anyway",
      );
      if (choice === undefined) {
        return;
      }
    }
    let answer: unknown;
    this.starting = true;
    context.requestsInFlight(1);
    try {
      answer = await client.sendRequest(ExecuteCommandRequest.type, {
        command: ServerCommands.signIn,
        arguments: [...SIGN_IN_ARGUMENTS],
      });
    } catch (error) {
      const waiting = stillPending(this.pending, Date.now());
      if (errorReason(error) === SIGN_IN_IN_PROGRESS && waiting !== undefined) {
        // A sign-in is already waiting for its code: show that code again.
        await this.showCode(waiting);
        return;
      }
      // With `clientShowsCode` the server leaves telling the user to the extension.
      context.outputChannel.warn(`tandem.signIn failed: ${errorMessage(error)}`);
      void vscode.window.showErrorMessage(userMessage(`sign-in failed: ${errorMessage(error)}`));
      return;
    } finally {
      this.starting = false;
      context.requestsInFlight(-1);
    }
    const started = parseSignInStarted(answer);
    if (started === undefined) {
      context.outputChannel.warn(`tandem.signIn: unexpected answer ${JSON.stringify(answer)}`);
      return;
    }
    this.pending = pendingSignIn(started, Date.now());
    await this.showCode(this.pending);
  }

  private async showCode(pending: PendingSignIn): Promise<void> {
    const choice = await vscode.window.showInformationMessage(signInPrompt(pending.started), COPY_AND_OPEN);
    if (choice !== COPY_AND_OPEN) {
      return;
    }
    await vscode.env.clipboard.writeText(pending.started.userCode);
    const opened = await vscode.env.openExternal(vscode.Uri.parse(signInPage(pending.started), true));
    if (!opened) {
      void vscode.window.showWarningMessage(
        `Tandem: could not open a browser. Open ${pending.started.verificationUri} and enter ${pending.started.userCode}.`,
      );
    }
  }

  async signOut(): Promise<void> {
    const context = this.context();
    const client = runningClient(context);
    if (client === undefined) {
      return;
    }
    let answer: unknown;
    context.requestsInFlight(1);
    try {
      answer = await client.sendRequest(ExecuteCommandRequest.type, {
        command: ServerCommands.signOut,
        arguments: [],
      });
    } catch (error) {
      context.outputChannel.warn(`tandem.signOut failed: ${errorMessage(error)}`);
      void vscode.window.showErrorMessage(userMessage(`sign-out failed: ${errorMessage(error)}`));
      return;
    } finally {
      context.requestsInFlight(-1);
    }
    this.pending = undefined;
    const signedOut = answer === true;
    const status = (await context.refreshStatus().catch(() => undefined)) ?? context.status();
    const message = signOutMessage({
      signedOut,
      keyInEditor: await context.keyInEditor(),
      keyStillInUse: status === undefined ? undefined : status.state !== "signedOut",
    });
    if (message !== undefined) {
      void vscode.window.showInformationMessage(message);
    }
  }
}
