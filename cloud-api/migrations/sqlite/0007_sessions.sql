-- Browser sessions: a short-lived signed access token (JWT) and a refresh token that
-- rotates on every use. Every refresh token ever issued is kept (hashed) until its
-- session ends, so one used twice is recognised as stolen and ends the session.

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    -- The refresh window: no refresh after this, whatever the rotation.
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    -- Why it ended: `sign_out`, `refresh_reuse`, `admin`.
    revoked_because TEXT
);

CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE session_refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  TEXT NOT NULL,
    -- Set when exchanged for the next one; a second exchange is a theft.
    used_at    TEXT
);

CREATE INDEX session_refresh_tokens_session ON session_refresh_tokens (session_id);

-- Ending a session must reach every server's caches like a revoked key does.
CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at ON sessions
    WHEN OLD.revoked_at IS NOT NEW.revoked_at
BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1;
END;
