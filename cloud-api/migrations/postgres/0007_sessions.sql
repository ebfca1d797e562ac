-- Browser sessions: a short-lived signed access token (JWT) and a refresh token that
-- rotates on every use. Every refresh token ever issued is kept (hashed) until its
-- session ends, so one used twice is recognised as stolen and ends the session.

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    -- The refresh window: no refresh after this, whatever the rotation.
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    -- Why it ended: `sign_out`, `refresh_reuse`, `admin`.
    revoked_because TEXT
);

CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE session_refresh_tokens (
    token_hash BYTEA PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  TIMESTAMPTZ NOT NULL,
    -- Set when exchanged for the next one; a second exchange is a theft.
    used_at    TIMESTAMPTZ
);

CREATE INDEX session_refresh_tokens_session ON session_refresh_tokens (session_id);

-- Ending a session must reach every server's caches like a revoked key does (through
-- 0004's counting function).
CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at ON sessions
    FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION auth_epoch_bump();
