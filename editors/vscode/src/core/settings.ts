// What the extension's settings mean for the language server, without VS Code: which
// `initializationOptions` they become, whether a document gets automatic suggestions, and
// which executable to start. `src/extension.ts` reads the values; this module decides.

/**
 * The server's settings (docs/editors/PROTOCOL.md, "Settings"): `initializationOptions`,
 * and the `tandem` section of `workspace/didChangeConfiguration`. A key that is absent is
 * left to the server's own fallbacks.
 */
export interface ServerSettings {
  server?: string;
  apiKey?: string;
  debounceMs?: number;
  maxPrefixChars?: number;
  maxSuffixChars?: number;
  maxContextTokens?: number;
  requestTimeoutMs?: number;
}

/** The integer settings, named the same in VS Code (`tandem.<name>`) and on the server. */
export const INTEGER_SETTINGS = [
  "debounceMs",
  "maxPrefixChars",
  "maxSuffixChars",
  "maxContextTokens",
  "requestTimeoutMs",
] as const;

export type IntegerSetting = (typeof INTEGER_SETTINGS)[number];

/**
 * The extension's settings as VS Code holds them. Values are `unknown` because
 * `settings.json` is edited by hand; the integers are only those the user set explicitly
 * (the defaults VS Code shows are the server's, so sending them would add nothing).
 */
export interface ExtensionSettings {
  /** `tandem.server`. */
  server?: unknown;
  /** `tandem.apiKey`, the plain-text setting. */
  apiKey?: unknown;
  /** The key kept by **Tandem: Set API Key** in VS Code's secret storage. */
  storedApiKey?: unknown;
  /** `tandem.debounceMs`, `tandem.maxPrefixChars`, …, when set explicitly. */
  integers?: Partial<Record<IntegerSetting, unknown>>;
}

/** A trimmed non-empty string, or `undefined`. */
function nonEmpty(value: unknown): string | undefined {
  if (typeof value !== "string") {
    return undefined;
  }
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
}

/**
 * Builds the server's settings. The stored key wins over the plain-text one: a key typed
 * into `settings.json` is readable by anything that syncs or backs up that file, so once
 * the user moved it to secret storage that copy is the one they mean.
 */
export function serverSettings(settings: ExtensionSettings): ServerSettings {
  const result: ServerSettings = {};
  const server = nonEmpty(settings.server);
  if (server !== undefined) {
    result.server = server;
  }
  const apiKey = nonEmpty(settings.storedApiKey) ?? nonEmpty(settings.apiKey);
  if (apiKey !== undefined) {
    result.apiKey = apiKey;
  }
  for (const name of INTEGER_SETTINGS) {
    const value = settings.integers?.[name];
    // The server skips a value of the wrong type with a warning; leaving it out here
    // keeps its default without the warning.
    if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
      result[name] = value;
    }
  }
  return result;
}

/**
 * Whether moving from the settings the server was started with to `next` needs a
 * restart: the server layers `didChangeConfiguration` over `initializationOptions`, so a
 * value given at start and cleared since would fall back to that old value, not to the
 * default. Only a restart really clears it.
 */
export function clearedSettings(started: ServerSettings, next: ServerSettings): string[] {
  return (Object.keys(started) as (keyof ServerSettings)[]).filter(
    (name) => started[name] !== undefined && next[name] === undefined,
  );
}

/** `tandem.path`, or `tandem` (looked up on `PATH`) when it is empty. */
export function executablePath(configured: unknown): string {
  return nonEmpty(configured) ?? "tandem";
}

/** `tandem.enabledLanguages` when it is missing or not a list of strings. */
export const ALL_LANGUAGES: readonly string[] = ["*"];

/**
 * Whether `tandem.enabledLanguages` gives `languageId` automatic suggestions. The list
 * holds language ids, `"*"` for every language and `"!id"` to take one out again; an
 * exclusion wins over an inclusion, so `["*", "!markdown"]` and `["markdown",
 * "!markdown"]` both leave Markdown out. Anything else than a list of strings counts as
 * `["*"]`, so a typo in `settings.json` does not silently turn suggestions off.
 */
export function isLanguageEnabled(patterns: unknown, languageId: string): boolean {
  const list =
    Array.isArray(patterns) && patterns.every((entry) => typeof entry === "string")
      ? (patterns as string[]).map((entry) => entry.trim())
      : ALL_LANGUAGES;
  if (list.includes(`!${languageId}`)) {
    return false;
  }
  return list.includes("*") || list.includes(languageId);
}

/** Why a suggestion is or is not asked for; see [`shouldSuggest`]. */
export interface SuggestionContext {
  languageId: string;
  /** `tandem.enabledLanguages`. */
  enabledLanguages: unknown;
  /** The Toggle state: automatic suggestions on. */
  suggestionsOn: boolean;
  /** The user asked explicitly (**Trigger Inline Suggestion**), not typing. */
  explicit: boolean;
}

/**
 * Whether to ask the server for an inline suggestion. Toggle and the language list only
 * silence the automatic ones: an explicit trigger is the user asking, so it is answered
 * whatever the two say.
 */
export function shouldSuggest(context: SuggestionContext): boolean {
  if (context.explicit) {
    return true;
  }
  return context.suggestionsOn && isLanguageEnabled(context.enabledLanguages, context.languageId);
}
