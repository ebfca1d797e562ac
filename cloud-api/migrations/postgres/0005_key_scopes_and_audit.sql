-- API keys gain scopes and an optional expiry; an audit log records who did what.
--
-- Scopes are space-separated (as OAuth writes them): `completions`, `chat`, `admin`.
-- Keys made before scopes existed could do everything but administration, which they
-- keep.

ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'completions chat';
ALTER TABLE api_keys ADD COLUMN expires_at TIMESTAMPTZ;

-- Sign-ins, key creation and revocation, tier changes and administrative actions:
-- append-only, kept when the user is deleted (actor and target are plain text).
CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    -- `user:<id>` for a user acting through a key or a session, `cli` for the admin
    -- command line on the server machine.
    actor      TEXT NOT NULL,
    -- The key the actor used, when they used one.
    actor_key  TEXT,
    -- `key.create`, `key.revoke`, `user.create`, `user.set_tier`, ...
    action     TEXT NOT NULL,
    -- What was acted on: `key:<id>`, `user:<id>`.
    target     TEXT,
    -- The client's address, or `cli`.
    source     TEXT NOT NULL,
    -- Details as JSON (a key's name and scopes, the old and new tier). TEXT as in SQLite,
    -- not JSONB: the code binds and reads it as a string.
    detail     TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE INDEX audit_log_target ON audit_log (target, at);
