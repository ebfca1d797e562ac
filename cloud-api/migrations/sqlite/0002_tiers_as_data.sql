-- Tiers are data (`[tiers.<name>]` in the configuration), so `users.tier` holds any tier
-- name; the server checks it against the configuration.
--
-- SQLite cannot drop a CHECK constraint, so the table is rebuilt. Dropping `users` while
-- `api_keys` refers to it would cascade-delete every key (foreign keys are on, and this
-- runs inside sqlx's transaction where they cannot be turned off), so `api_keys` is
-- rebuilt too, pointing at the new table, and the old ones are dropped child first.

CREATE TABLE users_new (
    id         TEXT PRIMARY KEY NOT NULL,
    email      TEXT NOT NULL COLLATE NOCASE,
    tier       TEXT NOT NULL CHECK (length(tier) BETWEEN 1 AND 32),
    created_at TEXT NOT NULL
);

INSERT INTO users_new (id, email, tier, created_at)
    SELECT id, email, tier, created_at FROM users;

CREATE TABLE api_keys_new (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- SHA-256 of the whole key, `tdm_` included.
    key_hash     BLOB NOT NULL,
    -- The first characters of the key, so people can tell their keys apart in listings.
    key_prefix   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);

INSERT INTO api_keys_new (id, user_id, name, key_hash, key_prefix, created_at, last_used_at, revoked_at)
    SELECT id, user_id, name, key_hash, key_prefix, created_at, last_used_at, revoked_at
    FROM api_keys;

DROP TABLE api_keys;
DROP TABLE users;

-- Renaming also rewrites api_keys_new's reference to `users`.
ALTER TABLE users_new RENAME TO users;
ALTER TABLE api_keys_new RENAME TO api_keys;

CREATE UNIQUE INDEX users_email ON users (email);
CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX api_keys_user_id ON api_keys (user_id);
