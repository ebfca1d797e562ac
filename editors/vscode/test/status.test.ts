// The status bar item and its menu (src/core/status.ts).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  formatCount,
  formatQuota,
  formatResetsIn,
  formatTokens,
  parseStatus,
  presentStatus,
  Status,
  statusMenu,
  StatusView,
} from "../src/core/status";

const NOW = new Date("2026-12-06T02:35:00Z");

/** The example of docs/editors/PROTOCOL.md. */
const READY = {
  state: "ready",
  busy: false,
  server: "http://127.0.0.1:8787",
  email: "dev@localhost",
  tier: "pro",
  quota: { window: "hour", limit: 500, remaining: 473, resetsAt: "2026-12-06T03:00:00Z" },
  tokens: { limit: 8000000, remaining: 7990000, resetsAt: "2026-12-07T00:00:00Z" },
  message: null,
};

function status(overrides: Partial<Status> = {}): Status {
  const parsed = parseStatus(READY);
  assert.ok(parsed);
  return { ...parsed, ...overrides };
}

function running(overrides: Partial<StatusView> = {}): StatusView {
  return { phase: "running", status: status(), suggestionsOn: true, requestsInFlight: 0, ...overrides };
}

test("the protocol's example status is read field by field", () => {
  assert.deepEqual(parseStatus(READY), READY);
});

test("a status is read defensively", () => {
  assert.equal(parseStatus(null), undefined);
  assert.equal(parseStatus({}), undefined);
  assert.equal(parseStatus({ state: "" }), undefined);
  // An answer that is not a status (say, `null` from a server without the method).
  assert.equal(parseStatus(true), undefined);
  assert.deepEqual(parseStatus({ state: "signedOut" }), {
    state: "signedOut",
    busy: false,
    server: null,
    email: null,
    tier: null,
    quota: null,
    tokens: null,
    message: null,
  });
  const partial = parseStatus({ state: "ready", busy: "yes", quota: { limit: 5 }, tokens: { limit: 1, remaining: 1 } });
  assert.ok(partial);
  assert.equal(partial.busy, false);
  assert.equal(partial.quota, null);
  assert.deepEqual(partial.tokens, { limit: 1, remaining: 1, resetsAt: null });
});

test("counts and reset times", () => {
  assert.equal(formatCount(7990000), "7,990,000");
  const cases: [string | null, string][] = [
    ["2026-12-06T03:00:00Z", "in 25 min"],
    ["2026-12-06T02:35:30Z", "in 1 min"],
    ["2026-12-06T03:35:00Z", "in 1 h"],
    ["2026-12-07T00:00:00Z", "in 21 h 25 min"],
    ["2026-12-10T00:00:00Z", "in 3 days"],
    ["2026-12-06T02:00:00Z", ""],
    ["not a time", ""],
    [null, ""],
  ];
  for (const [resetsAt, expected] of cases) {
    assert.equal(formatResetsIn(resetsAt, NOW), expected, String(resetsAt));
  }
});

test("quota and token lines", () => {
  assert.equal(formatQuota(READY.quota, NOW), "473 of 500 requests left this hour, resets in 25 min");
  assert.equal(
    formatQuota({ window: "day", limit: 2000, remaining: 0, resetsAt: null }, NOW),
    "0 of 2,000 requests left today",
  );
  assert.equal(formatQuota({ window: "", limit: 5, remaining: 1, resetsAt: null }, NOW), "1 of 5 requests left");
  assert.equal(formatTokens(READY.tokens, NOW), "7,990,000 of 8,000,000 tokens left today, resets in 21 h 25 min");
});

test("the item shows sign-in state, tier and remaining quota", () => {
  const cases: [StatusView, string][] = [
    [running(), "$(check) Tandem: pro · 473 left"],
    [running({ status: status({ quota: null }) }), "$(check) Tandem: pro"],
    [running({ status: status({ tier: null, quota: null }) }), "$(check) Tandem"],
    [running({ status: status({ state: "signedOut", email: null, tier: null, quota: null, tokens: null }) }), "$(sign-in) Tandem: Sign in"],
    [running({ status: status({ state: "signingIn" }) }), "$(key) Tandem: Signing in…"],
    [running({ status: status({ state: "unauthorized" }) }), "$(error) Tandem: Key rejected"],
    [running({ status: status({ state: "limited", quota: { ...READY.quota, remaining: 0 } }) }), "$(warning) Tandem: Limited · pro · 0 left"],
    [running({ status: status({ state: "offline" }) }), "$(debug-disconnect) Tandem: Offline"],
    [running({ status: status({ state: "somethingNew" }) }), "$(question) Tandem: somethingNew"],
  ];
  for (const [view, expected] of cases) {
    assert.equal(presentStatus(view, NOW).text, expected, JSON.stringify(view.status?.state));
  }
});

test("a spinner while a request runs, on the server's word or the extension's", () => {
  assert.equal(presentStatus(running({ status: status({ busy: true }) }), NOW).text, "$(loading~spin) Tandem: pro · 473 left");
  assert.equal(presentStatus(running({ requestsInFlight: 1 }), NOW).text, "$(loading~spin) Tandem: pro · 473 left");
  assert.equal(presentStatus(running({ status: undefined, requestsInFlight: 2 }), NOW).text, "$(loading~spin) Tandem");
  assert.match(presentStatus(running({ requestsInFlight: 1 }), NOW).tooltip, /Waiting for the Tandem server/);
});

test("Toggle off shows in the icon and the tooltip", () => {
  const off = presentStatus(running({ suggestionsOn: false }), NOW);
  assert.equal(off.text, "$(circle-slash) Tandem: pro · 473 left");
  assert.match(off.tooltip, /Inline suggestions: off/);
  // Signed out, the sign-in icon says more than the Toggle.
  const signedOut = running({ suggestionsOn: false, status: status({ state: "signedOut" }) });
  assert.equal(presentStatus(signedOut, NOW).text, "$(sign-in) Tandem: Sign in");
  assert.equal(presentStatus(running({ status: undefined, suggestionsOn: false }), NOW).text, "$(circle-slash) Tandem");
});

test("the tooltip spells the status out", () => {
  assert.equal(
    presentStatus(running(), NOW).tooltip,
    [
      "Tandem: Signed in as dev@localhost (pro).",
      "Server: http://127.0.0.1:8787",
      "Requests: 473 of 500 requests left this hour, resets in 25 min",
      "Tokens: 7,990,000 of 8,000,000 tokens left today, resets in 21 h 25 min",
      "Inline suggestions: on.",
      "Click for the Tandem menu.",
    ].join("\n"),
  );
  const limited = presentStatus(
    running({ status: status({ state: "limited", message: "Hourly limit reached; resets at 03:00 UTC." }) }),
    NOW,
  );
  assert.equal(limited.severity, "warning");
  assert.match(limited.tooltip, /^Tandem: Signed in as dev@localhost \(pro\); a limit was reached\.\nHourly limit reached; resets at 03:00 UTC\.\n/);
  // `message` is for states other than ready.
  assert.doesNotMatch(presentStatus(running({ status: status({ message: "stale" }) }), NOW).tooltip, /stale/);
});

test("severity colours the item for states that need the user", () => {
  assert.equal(presentStatus(running(), NOW).severity, "normal");
  assert.equal(presentStatus(running({ status: status({ state: "unauthorized" }) }), NOW).severity, "error");
  assert.equal(presentStatus(running({ status: status({ state: "offline" }) }), NOW).severity, "warning");
  assert.equal(presentStatus(running({ status: status({ state: "signedOut" }) }), NOW).severity, "warning");
});

test("the server's own phases", () => {
  const view = (phase: StatusView["phase"], failure?: string): StatusView => ({
    phase,
    suggestionsOn: true,
    requestsInFlight: 0,
    failure,
  });
  assert.equal(presentStatus(view("starting"), NOW).text, "$(loading~spin) Tandem");
  assert.equal(presentStatus(view("disabled"), NOW).text, "$(circle-slash) Tandem");
  assert.match(presentStatus(view("disabled"), NOW).tooltip, /tandem\.enable/);
  const failed = presentStatus(view("failed", 'could not start "tandem"'), NOW);
  assert.equal(failed.text, "$(error) Tandem");
  assert.equal(failed.severity, "error");
  assert.match(failed.tooltip, /not running: could not start "tandem"/);
});

test("the menu offers what fits the state", () => {
  const commands = (view: StatusView): string[] => statusMenu(view).map((entry) => entry.command);
  const fixed = ["tandem.toggle", "tandem.restartServer", "tandem.showOutput", "workbench.action.openSettings"];
  assert.deepEqual(commands(running()), ["tandem.signOut", ...fixed]);
  assert.deepEqual(commands(running({ status: status({ state: "signedOut" }) })), ["tandem.signIn", ...fixed]);
  assert.deepEqual(commands(running({ status: status({ state: "unauthorized" }) })), ["tandem.signIn", "tandem.signOut", ...fixed]);
  assert.deepEqual(commands(running({ status: status({ state: "signingIn" }) })), ["tandem.signIn", ...fixed]);
  // Without a status the extension cannot tell, so it offers both.
  assert.deepEqual(commands(running({ status: undefined })), ["tandem.signIn", "tandem.signOut", ...fixed]);
  assert.deepEqual(commands({ phase: "disabled", suggestionsOn: true, requestsInFlight: 0 }), [
    "tandem.toggle",
    "tandem.showOutput",
    "workbench.action.openSettings",
  ]);

  const menu = statusMenu(running({ suggestionsOn: false }));
  assert.equal(menu.find((entry) => entry.command === "tandem.toggle")?.label, "$(check) Turn On Inline Suggestions");
  assert.equal(menu.find((entry) => entry.command === "tandem.signOut")?.description, "dev@localhost");
  assert.deepEqual(menu.find((entry) => entry.command === "workbench.action.openSettings")?.arguments, ["@ext:tandem.tandem"]);
});
