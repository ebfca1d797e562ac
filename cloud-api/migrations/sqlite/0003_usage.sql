-- One row per served (or refused) API request: who, with which key, what for, which
-- provider and model answered, tokens, latency, HTTP status and estimated cost.
-- Written in batches (group commit) before each response completes.

CREATE TABLE usage (
    id                INTEGER PRIMARY KEY,
    -- `cmpl-<uuid>` for completions: the id the client saw.
    request_id        TEXT NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id            TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    -- The feature: inline_completion, chat, explanation, code_actions.
    task              TEXT NOT NULL,
    provider          TEXT,
    model             TEXT,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_ms        INTEGER NOT NULL,
    status            INTEGER NOT NULL,
    -- US dollars, from `[prices]` in the configuration; 0 when the model has no price.
    cost_usd          REAL NOT NULL DEFAULT 0,
    -- RFC 3339, UTC, with milliseconds: sorts as text.
    created_at        TEXT NOT NULL
);

CREATE INDEX usage_user_created ON usage (user_id, created_at);
