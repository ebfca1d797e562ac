// The status bar item (sign-in state, tier, remaining quota, a spinner while a request
// runs) and the menu it opens. What it says is decided in core/status.ts.

import * as vscode from "vscode";

import { presentStatus, ServerPhase, Status, statusMenu, StatusView } from "./core/status";

/** Tooltips say "resets in 25 min"; redrawing once a minute keeps that true. */
const REFRESH_INTERVAL_MS = 60_000;

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly timer: NodeJS.Timeout;
  private view: StatusView;

  constructor(suggestionsOn: boolean) {
    this.item = vscode.window.createStatusBarItem("tandem.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "Tandem";
    this.item.command = "tandem.showMenu";
    this.view = { phase: "starting", suggestionsOn, requestsInFlight: 0 };
    this.render();
    this.item.show();
    this.timer = setInterval(() => this.render(), REFRESH_INTERVAL_MS);
  }

  get current(): StatusView {
    return this.view;
  }

  setPhase(phase: ServerPhase, failure?: string): void {
    // A server that is not running has no status worth showing; the next one reports its own.
    const status = phase === "running" ? this.view.status : undefined;
    this.update({ phase, failure, status });
  }

  setStatus(status: Status | undefined): void {
    this.update({ status });
  }

  setSuggestionsOn(suggestionsOn: boolean): void {
    this.update({ suggestionsOn });
  }

  requestsInFlight(change: 1 | -1): void {
    this.update({ requestsInFlight: Math.max(0, this.view.requestsInFlight + change) });
  }

  /** The quick pick the item opens. */
  async showMenu(): Promise<void> {
    const entries = statusMenu(this.view);
    const picked = await vscode.window.showQuickPick(
      entries.map((entry) => ({ label: entry.label, description: entry.description, entry })),
      { title: "Tandem", placeHolder: presentStatus(this.view, new Date()).tooltip.split("\n")[0] },
    );
    if (picked !== undefined) {
      await vscode.commands.executeCommand(picked.entry.command, ...(picked.entry.arguments ?? []));
    }
  }

  dispose(): void {
    clearInterval(this.timer);
    this.item.dispose();
  }

  private update(change: Partial<StatusView>): void {
    this.view = { ...this.view, ...change };
    this.render();
  }

  private render(): void {
    const presentation = presentStatus(this.view, new Date());
    this.item.text = presentation.text;
    this.item.tooltip = presentation.tooltip;
    this.item.backgroundColor =
      presentation.severity === "error"
        ? new vscode.ThemeColor("statusBarItem.errorBackground")
        : presentation.severity === "warning"
          ? new vscode.ThemeColor("statusBarItem.warningBackground")
          : undefined;
  }
}
