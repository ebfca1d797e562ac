-- One row per served (or refused) API request: who, with which key, what for, which
-- provider and model answered, tokens, latency, HTTP status and estimated cost.
-- Written in batches (group commit) before each response completes.
--
-- PostgreSQL: `id` is an identity column where SQLite has `INTEGER PRIMARY KEY` (the
-- rowid); both fill it themselves and the code never writes it (GENERATED ALWAYS refuses
-- an explicit id). Integers are BIGINT (the code decodes i64), REAL is DOUBLE PRECISION.

CREATE TABLE usage (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- `cmpl-<uuid>` for completions: the id the client saw.
    request_id        TEXT NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key_id            TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    -- The feature: inline_completion, chat, explanation, code_actions.
    task              TEXT NOT NULL,
    provider          TEXT,
    model             TEXT,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    latency_ms        BIGINT NOT NULL,
    status            BIGINT NOT NULL,
    -- US dollars, from `[prices]` in the configuration; 0 when the model has no price.
    cost_usd          DOUBLE PRECISION NOT NULL DEFAULT 0,
    -- A real timestamp (microseconds), compared and sorted as time; SQLite keeps
    -- fixed-width RFC 3339 text with milliseconds so that it sorts as text.
    created_at        TIMESTAMPTZ NOT NULL
);

CREATE INDEX usage_user_created ON usage (user_id, created_at);
