// The status bar item and its menu, without VS Code: the server's Status object
// (docs/editors/PROTOCOL.md, `tandem/status`) read defensively, and what the item shows
// for it. `src/statusBar.ts` only puts the result on screen.

/** `state` of a Status; a future server may add more, which show as unknown. */
export type StatusState = "signedOut" | "signingIn" | "ready" | "unauthorized" | "limited" | "offline";

/** The request quota closest to running out. */
export interface Quota {
  /** `hour` or `day`. */
  window: string;
  limit: number;
  remaining: number;
  resetsAt: string | null;
}

/** The daily token budget. */
export interface TokenBudget {
  limit: number;
  remaining: number;
  resetsAt: string | null;
}

/** What `tandem/status` answers and `tandem/didChangeStatus` carries. */
export interface Status {
  state: StatusState | string;
  busy: boolean;
  server: string | null;
  email: string | null;
  tier: string | null;
  quota: Quota | null;
  tokens: TokenBudget | null;
  message: string | null;
}

function stringOrNull(value: unknown): string | null {
  return typeof value === "string" && value !== "" ? value : null;
}

function count(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

function parseBudget(value: unknown): TokenBudget | null {
  if (typeof value !== "object" || value === null) {
    return null;
  }
  const record = value as Record<string, unknown>;
  const limit = count(record.limit);
  const remaining = count(record.remaining);
  if (limit === undefined || remaining === undefined) {
    return null;
  }
  return { limit, remaining, resetsAt: stringOrNull(record.resetsAt) };
}

/**
 * Reads a Status. `undefined` when `value` has no `state` (an answer from a server that
 * predates `tandem/status` cannot be mistaken for one); missing or malformed fields
 * become `null`, so a partly understood status still shows what it can.
 */
export function parseStatus(value: unknown): Status | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const record = value as Record<string, unknown>;
  if (typeof record.state !== "string" || record.state === "") {
    return undefined;
  }
  const budget = parseBudget(record.quota);
  const quotaWindow = (record.quota as Record<string, unknown> | null)?.window;
  return {
    state: record.state,
    busy: record.busy === true,
    server: stringOrNull(record.server),
    email: stringOrNull(record.email),
    tier: stringOrNull(record.tier),
    quota:
      budget === null
        ? null
        : { window: typeof quotaWindow === "string" ? quotaWindow : "", ...budget },
    tokens: parseBudget(record.tokens),
    message: stringOrNull(record.message),
  };
}

/** Where the language server is in its life, as the extension sees it. */
export type ServerPhase = "starting" | "running" | "stopped" | "failed" | "disabled";

/** Everything the status bar item shows. */
export interface StatusView {
  phase: ServerPhase;
  /** The last Status; `undefined` before the first one or from a server without it. */
  status?: Status;
  /** The Toggle state. */
  suggestionsOn: boolean;
  /** Requests of the extension still waiting for the server. */
  requestsInFlight: number;
  /** Why the server is not running, for `failed`. */
  failure?: string;
}

export type Severity = "normal" | "warning" | "error";

export interface StatusPresentation {
  /** With `$(icon)` codicons, as VS Code's status bar renders them. */
  text: string;
  tooltip: string;
  severity: Severity;
}

/** `1234567` as `1,234,567`, the same on every machine (tests compare it). */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

/** `in 25 min`, `in 3 h 5 min`, `in 2 days`; `""` for a past or unreadable time. */
export function formatResetsIn(resetsAt: string | null, now: Date): string {
  if (resetsAt === null) {
    return "";
  }
  const at = Date.parse(resetsAt);
  if (Number.isNaN(at)) {
    return "";
  }
  const minutes = Math.ceil((at - now.getTime()) / 60_000);
  if (minutes <= 0) {
    return "";
  }
  if (minutes < 60) {
    return `in ${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 48) {
    const rest = minutes % 60;
    return rest === 0 ? `in ${hours} h` : `in ${hours} h ${rest} min`;
  }
  return `in ${Math.floor(hours / 24)} days`;
}

/** `this hour`, `today`, or `this <window>` for a window this version does not know. */
function windowName(window: string): string {
  switch (window) {
    case "hour":
      return "this hour";
    case "day":
      return "today";
    case "":
      return "";
    default:
      return `this ${window}`;
  }
}

/** `473 of 500 requests left this hour, resets in 25 min`. */
export function formatQuota(quota: Quota, now: Date): string {
  const window = windowName(quota.window);
  const resets = formatResetsIn(quota.resetsAt, now);
  return [
    `${formatCount(quota.remaining)} of ${formatCount(quota.limit)} requests left`,
    window === "" ? "" : ` ${window}`,
    resets === "" ? "" : `, resets ${resets}`,
  ].join("");
}

/** `7,990,000 of 8,000,000 tokens left today, resets in 20 h`. */
export function formatTokens(tokens: TokenBudget, now: Date): string {
  const resets = formatResetsIn(tokens.resetsAt, now);
  return `${formatCount(tokens.remaining)} of ${formatCount(tokens.limit)} tokens left today${
    resets === "" ? "" : `, resets ${resets}`
  }`;
}

interface StatePresentation {
  icon: string;
  label: string;
  headline: string;
  severity: Severity;
}

function presentState(status: Status): StatePresentation {
  const who = status.email === null ? "" : ` as ${status.email}`;
  const tier = status.tier === null ? "" : ` (${status.tier})`;
  switch (status.state) {
    case "signedOut":
      return { icon: "$(sign-in)", label: "Sign in", headline: "Not signed in.", severity: "warning" };
    case "signingIn":
      return {
        icon: "$(key)",
        label: "Signing in…",
        headline: "Waiting for the sign-in code to be confirmed in the browser.",
        severity: "normal",
      };
    case "ready":
      return { icon: "$(check)", label: "", headline: `Signed in${who}${tier}.`, severity: "normal" };
    case "unauthorized":
      return {
        icon: "$(error)",
        label: "Key rejected",
        headline: "The Tandem server rejected the API key.",
        severity: "error",
      };
    case "limited":
      return {
        icon: "$(warning)",
        label: "Limited",
        headline: `Signed in${who}${tier}; a limit was reached.`,
        severity: "warning",
      };
    case "offline":
      return {
        icon: "$(debug-disconnect)",
        label: "Offline",
        headline: "The Tandem server cannot be reached or is failing (details below).",
        severity: "warning",
      };
    default:
      return { icon: "$(question)", label: status.state, headline: `State: ${status.state}.`, severity: "normal" };
  }
}

const SPINNER = "$(loading~spin)";
const OFF = "$(circle-slash)";

/** The status bar item: sign-in state, tier and remaining quota, a spinner while busy. */
export function presentStatus(view: StatusView, now: Date): StatusPresentation {
  const busy = view.requestsInFlight > 0 || view.status?.busy === true;
  const suggestions = view.suggestionsOn
    ? "Inline suggestions: on."
    : "Inline suggestions: off (Tandem: Toggle Inline Suggestions turns them on).";
  const footer = "Click for the Tandem menu.";
  switch (view.phase) {
    case "disabled":
      return {
        text: `${OFF} Tandem`,
        tooltip: ["Tandem is turned off (setting tandem.enable).", footer].join("\n"),
        severity: "normal",
      };
    case "failed":
      return {
        text: "$(error) Tandem",
        tooltip: [
          `The Tandem language server is not running${view.failure ? `: ${view.failure}` : "."}`,
          footer,
        ].join("\n"),
        severity: "error",
      };
    case "starting":
    case "stopped":
      return {
        text: `${SPINNER} Tandem`,
        tooltip: ["Starting the Tandem language server…", footer].join("\n"),
        severity: "normal",
      };
    case "running":
      break;
  }

  const status = view.status;
  if (status === undefined) {
    // A server without `tandem/status`, or before its first answer.
    return {
      text: `${busy ? SPINNER : view.suggestionsOn ? "$(check)" : OFF} Tandem`,
      tooltip: ["Tandem is running.", suggestions, footer].join("\n"),
      severity: "normal",
    };
  }

  const state = presentState(status);
  const parts: string[] = [];
  if (state.label !== "") {
    parts.push(state.label);
  }
  const signedIn = status.state === "ready" || status.state === "limited";
  if (signedIn && status.tier !== null) {
    parts.push(status.tier);
  }
  if (signedIn && status.quota !== null) {
    parts.push(`${formatCount(status.quota.remaining)} left`);
  }
  const icon = busy ? SPINNER : view.suggestionsOn || !signedIn ? state.icon : OFF;
  const text = `${icon} Tandem${parts.length > 0 ? `: ${parts.join(" · ")}` : ""}`;

  const lines = [`Tandem: ${state.headline}`];
  if (status.message !== null && status.state !== "ready") {
    lines.push(status.message);
  }
  if (status.server !== null) {
    lines.push(`Server: ${status.server}`);
  }
  if (status.quota !== null) {
    lines.push(`Requests: ${formatQuota(status.quota, now)}`);
  }
  if (status.tokens !== null) {
    lines.push(`Tokens: ${formatTokens(status.tokens, now)}`);
  }
  if (busy) {
    lines.push("Waiting for the Tandem server…");
  }
  lines.push(suggestions, footer);
  return { text, tooltip: lines.join("\n"), severity: state.severity };
}

/** One entry of the menu the status bar item opens. */
export interface MenuEntry {
  label: string;
  description?: string;
  command: string;
  arguments?: unknown[];
}

/** The extension's id (`publisher.name`), which scopes the settings page to it. */
export const EXTENSION_ID = "tandem.tandem";

/** The menu: what makes sense in the current state first, then the fixed entries. */
export function statusMenu(view: StatusView): MenuEntry[] {
  const entries: MenuEntry[] = [];
  const state = view.status?.state;
  if (view.phase === "running") {
    if (state === undefined || state === "signedOut" || state === "unauthorized") {
      entries.push({ label: "$(sign-in) Sign In", command: "tandem.signIn" });
    }
    if (state === "signingIn") {
      entries.push({
        label: "$(key) Show Sign-In Code",
        description: "waiting for the browser",
        command: "tandem.signIn",
      });
    }
    if (state === undefined || state === "ready" || state === "limited" || state === "offline" || state === "unauthorized") {
      entries.push({
        label: "$(sign-out) Sign Out",
        description: view.status?.email ?? undefined,
        command: "tandem.signOut",
      });
    }
  }
  entries.push({
    label: view.suggestionsOn ? "$(circle-slash) Turn Off Inline Suggestions" : "$(check) Turn On Inline Suggestions",
    command: "tandem.toggle",
  });
  if (view.phase === "failed" || view.phase === "running") {
    entries.push({ label: "$(debug-restart) Restart Server", command: "tandem.restartServer" });
  }
  entries.push(
    { label: "$(output) Show Output", command: "tandem.showOutput" },
    {
      label: "$(gear) Open Settings",
      command: "workbench.action.openSettings",
      arguments: [`@ext:${EXTENSION_ID}`],
    },
  );
  return entries;
}
