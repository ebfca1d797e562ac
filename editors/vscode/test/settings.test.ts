// Settings → initializationOptions, the language list and the Toggle (src/core/settings.ts).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  clearedSettings,
  executablePath,
  isLanguageEnabled,
  serverSettings,
  shouldSuggest,
} from "../src/core/settings";

test("only the settings a user set reach the server, trimmed", () => {
  assert.deepEqual(serverSettings({}), {});
  assert.deepEqual(
    serverSettings({
      server: "  http://127.0.0.1:8787 ",
      apiKey: " tdm_plain ",
      integers: { debounceMs: 40, maxPrefixChars: 4000, maxContextTokens: undefined },
    }),
    { server: "http://127.0.0.1:8787", apiKey: "tdm_plain", debounceMs: 40, maxPrefixChars: 4000 },
  );
  // Empty strings mean "unset" and are left to the server's fallbacks.
  assert.deepEqual(serverSettings({ server: "", apiKey: "   ", storedApiKey: "" }), {});
});

test("the stored API key wins over the plain-text setting", () => {
  assert.equal(serverSettings({ apiKey: "tdm_plain", storedApiKey: "tdm_secret" }).apiKey, "tdm_secret");
  assert.equal(serverSettings({ apiKey: "tdm_plain", storedApiKey: undefined }).apiKey, "tdm_plain");
  assert.equal(serverSettings({ apiKey: "tdm_plain", storedApiKey: "  " }).apiKey, "tdm_plain");
});

test("every integer setting maps to the server key of the same name", () => {
  const integers = {
    debounceMs: 0,
    maxPrefixChars: 1,
    maxSuffixChars: 2,
    maxContextTokens: 3,
    requestTimeoutMs: 4,
  };
  assert.deepEqual(serverSettings({ integers }), integers);
});

test("integers of the wrong type or out of range are left out", () => {
  const cases: [unknown, number | undefined][] = [
    [75, 75],
    [0, 0],
    [-1, undefined],
    [1.5, undefined],
    ["75", undefined],
    [null, undefined],
    [Number.NaN, undefined],
    [Number.POSITIVE_INFINITY, undefined],
    [2 ** 60, undefined],
  ];
  for (const [value, expected] of cases) {
    assert.equal(serverSettings({ integers: { debounceMs: value } }).debounceMs, expected, `debounceMs ${String(value)}`);
  }
});

test("a setting cleared since the start needs a restart; a changed one does not", () => {
  assert.deepEqual(clearedSettings({ server: "a", debounceMs: 10 }, { server: "b", debounceMs: 10 }), []);
  assert.deepEqual(clearedSettings({ server: "a", debounceMs: 10 }, { server: "a" }), ["debounceMs"]);
  assert.deepEqual(clearedSettings({}, { apiKey: "tdm_new" }), []);
  assert.deepEqual(clearedSettings({ apiKey: "tdm_old" }, {}), ["apiKey"]);
});

test("tandem.path falls back to tandem on PATH", () => {
  assert.equal(executablePath(undefined), "tandem");
  assert.equal(executablePath("  "), "tandem");
  assert.equal(executablePath(" /opt/tandem/bin/tandem "), "/opt/tandem/bin/tandem");
  assert.equal(executablePath(42), "tandem");
});

test("enabledLanguages: ids, * and !id, where an exclusion wins", () => {
  const cases: [unknown, string, boolean][] = [
    [["*"], "python", true],
    [["*"], "markdown", true],
    [["*", "!markdown"], "markdown", false],
    [["*", "!markdown"], "python", true],
    [["python", "rust"], "rust", true],
    [["python", "rust"], "go", false],
    [["markdown", "!markdown"], "markdown", false],
    [[], "python", false],
    [[" python "], "python", true],
    // Not a list of strings: as if unset, so a typo does not turn suggestions off.
    [undefined, "python", true],
    ["python", "go", true],
    [[1, 2], "go", true],
    [{ "*": false }, "go", true],
  ];
  for (const [patterns, languageId, expected] of cases) {
    assert.equal(isLanguageEnabled(patterns, languageId), expected, `${JSON.stringify(patterns)} ${languageId}`);
  }
});

test("Toggle and the language list silence automatic suggestions, never an explicit one", () => {
  const base = { languageId: "markdown", enabledLanguages: ["*", "!markdown"] };
  assert.equal(shouldSuggest({ ...base, suggestionsOn: true, explicit: false }), false);
  assert.equal(shouldSuggest({ ...base, suggestionsOn: true, explicit: true }), true);
  assert.equal(shouldSuggest({ languageId: "python", enabledLanguages: ["*"], suggestionsOn: false, explicit: false }), false);
  assert.equal(shouldSuggest({ languageId: "python", enabledLanguages: ["*"], suggestionsOn: false, explicit: true }), true);
  assert.equal(shouldSuggest({ languageId: "python", enabledLanguages: ["*"], suggestionsOn: true, explicit: false }), true);
});
