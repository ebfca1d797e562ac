// Tandem: Explain Selection. Sends `tandem/explain` for the selection (or the item under
// the cursor), shows progress with a Cancel button that cancels the request, and shows
// the Markdown answer in VS Code's Markdown preview while it streams in. The text lives
// in read-only virtual documents, so closing one never asks to save it.

import * as vscode from "vscode";
import { LanguageClient, ProgressType } from "vscode-languageclient/node";

import {
  ErrorCodes,
  explainParams,
  explainParamsFromArgument,
  ExplainParams,
  explainPiece,
  explanationDocument,
  Methods,
  parseExplainResult,
  streamingExplanationDocument,
  userMessage,
} from "./core/protocol";

/** The URI scheme of explanation documents. */
export const EXPLANATION_SCHEME = "tandem-explanation";

/** How many explanations stay readable (an open preview reads its document again). */
const KEPT_EXPLANATIONS = 20;

/** The read-only documents explanations are shown in. */
export class Explanations implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  private created = 0;
  readonly onDidChange = this.changed.event;

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? "This explanation is no longer available.\n";
  }

  /** A new document; its `.md` name makes VS Code treat it as Markdown. */
  create(): vscode.Uri {
    this.created += 1;
    const uri = vscode.Uri.from({ scheme: EXPLANATION_SCHEME, path: `/Explanation ${this.created}.md` });
    this.texts.set(uri.toString(), "");
    while (this.texts.size > KEPT_EXPLANATIONS) {
      const oldest = this.texts.keys().next().value as string;
      this.texts.delete(oldest);
    }
    return uri;
  }

  set(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
  }

  dispose(): void {
    this.changed.dispose();
    this.texts.clear();
  }
}

/** Opens the Markdown preview beside the editor, or the Markdown source without it. */
async function showExplanation(uri: vscode.Uri): Promise<void> {
  try {
    await vscode.commands.executeCommand("markdown.showPreviewToSide", uri);
  } catch {
    // The built-in Markdown extension is disabled: show the text itself.
    const document = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.Beside, preview: true });
  }
}

/** What the explain command needs from the rest of the extension. */
export interface ExplainContext {
  client: LanguageClient | undefined;
  explanations: Explanations;
  outputChannel: vscode.LogOutputChannel;
  requestsInFlight(change: 1 | -1): void;
}

function isSynced(uri: vscode.Uri): boolean {
  return uri.scheme === "file" || uri.scheme === "untitled";
}

/** Params for the active editor's selection; `undefined` (and a message) when there is none. */
function paramsForActiveEditor(client: LanguageClient, token: string): ExplainParams | undefined {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined) {
    void vscode.window.showInformationMessage("Tandem: open a file and select the code to explain.");
    return undefined;
  }
  const document = editor.document;
  if (!isSynced(document.uri)) {
    void vscode.window.showInformationMessage("Tandem: only files and unsaved editors can be explained.");
    return undefined;
  }
  const selection = editor.selection;
  const converter = client.code2ProtocolConverter;
  // The problems VS Code shows in the selection go along, so the explanation accounts for them.
  const problems = vscode.languages
    .getDiagnostics(document.uri)
    .filter((diagnostic) => diagnostic.range.intersection(selection) !== undefined);
  return explainParams(
    {
      uri: converter.asUri(document.uri),
      selection: converter.asRange(selection),
      cursor: converter.asPosition(selection.active),
      diagnostics: converter.asDiagnosticsSync(problems),
    },
    token,
  );
}

function errorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

let explanationsRequested = 0;

/**
 * `tandem.explain`: with no argument, the active editor's selection; with one (from the
 * server's "Tandem: Explain …" code actions), `{uri, range?, question?, diagnostics?}`.
 */
export async function explain(context: ExplainContext, argument?: unknown): Promise<void> {
  const client = context.client;
  if (client === undefined || !client.isRunning()) {
    void vscode.window.showWarningMessage("Tandem: the language server is not running.");
    return;
  }
  explanationsRequested += 1;
  const partialResultToken = `tandem-explain-${process.pid}-${explanationsRequested}`;
  const params =
    argument === undefined
      ? paramsForActiveEditor(client, partialResultToken)
      : explainParamsFromArgument(argument, partialResultToken);
  if (params === undefined) {
    if (argument !== undefined) {
      context.outputChannel.warn(`tandem.explain: unexpected argument ${JSON.stringify(argument)}`);
    }
    return;
  }

  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: "Tandem: explaining", cancellable: true },
    async (progress, cancellation) => {
      let uri: vscode.Uri | undefined;
      let written = "";
      const show = (text: string): void => {
        if (uri === undefined) {
          uri = context.explanations.create();
          context.explanations.set(uri, text);
          void showExplanation(uri);
        } else {
          context.explanations.set(uri, text);
        }
      };
      const pieces = client.onProgress(new ProgressType<unknown>(), partialResultToken, (value) => {
        const piece = explainPiece(value);
        if (piece === undefined || cancellation.isCancellationRequested) {
          return;
        }
        written += piece;
        show(streamingExplanationDocument("Explanation", written));
        progress.report({ message: "writing…" });
      });
      progress.report({ message: "asking the model…" });
      context.requestsInFlight(1);
      try {
        // The token sends `$/cancelRequest` when the notification's Cancel is clicked.
        const answer: unknown = await client.sendRequest(Methods.explain, params, cancellation);
        const result = parseExplainResult(answer);
        if (result === undefined) {
          throw new Error(`unexpected answer ${JSON.stringify(answer)}`);
        }
        show(explanationDocument(result));
      } catch (error) {
        if (cancellation.isCancellationRequested || errorCode(error) === ErrorCodes.requestCancelled) {
          if (uri !== undefined) {
            context.explanations.set(uri, `${streamingExplanationDocument("Explanation", written)}\n*Cancelled.*\n`);
          }
          return;
        }
        context.outputChannel.warn(`tandem/explain failed: ${errorMessage(error)}`);
        void vscode.window.showWarningMessage(userMessage(errorMessage(error)));
      } finally {
        pieces.dispose();
        context.requestsInFlight(-1);
      }
    },
  );
}
