-- Users and their API keys.
--
-- Timestamps are RFC 3339 text in UTC (what sqlx writes for chrono::DateTime<Utc>).
-- API keys are stored only as SHA-256 hashes: a leaked database does not leak keys.

CREATE TABLE users (
    id         TEXT PRIMARY KEY NOT NULL,
    email      TEXT NOT NULL COLLATE NOCASE,
    tier       TEXT NOT NULL CHECK (tier IN ('free', 'pro', 'enterprise')),
    created_at TEXT NOT NULL
);

CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- SHA-256 of the whole key, `tdm_` included.
    key_hash     BLOB NOT NULL,
    -- The first characters of the key, so people can tell their keys apart in listings.
    key_prefix   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX api_keys_user_id ON api_keys (user_id);
