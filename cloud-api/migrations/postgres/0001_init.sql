-- Users and their API keys.
--
-- PostgreSQL twin of migrations/sqlite/0001_init.sql: same version, same description,
-- same tables, columns, constraints and index names. Where the types differ, it is
-- because PostgreSQL has a better one:
--
-- Timestamps are TIMESTAMPTZ (what sqlx binds and decodes for chrono::DateTime<Utc>)
-- where SQLite keeps RFC 3339 text in UTC.
-- API keys are stored only as SHA-256 hashes: a leaked database does not leak keys.
--
-- SQLite's `COLLATE NOCASE` has no PostgreSQL built-in; a nondeterministic ICU collation
-- gives the same case-insensitive `=` and case-insensitive uniqueness (the `users_email`
-- index), with the queries unchanged (`WHERE email = $1`). PostgreSQL 15 refuses `LIKE`
-- on such a column (PostgreSQL 18 allows it): do not use `LIKE` on `users.email`.

CREATE COLLATION IF NOT EXISTS case_insensitive
    (provider = icu, locale = 'und-u-ks-level2', deterministic = false);

CREATE TABLE users (
    id         TEXT PRIMARY KEY NOT NULL,
    email      TEXT NOT NULL COLLATE case_insensitive,
    -- Named, so that 0002 can drop it (SQLite has to rebuild the table instead).
    tier       TEXT NOT NULL
               CONSTRAINT users_tier_check CHECK (tier IN ('free', 'pro', 'enterprise')),
    created_at TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- SHA-256 of the whole key, `tdm_` included.
    key_hash     BYTEA NOT NULL,
    -- The first characters of the key, so people can tell their keys apart in listings.
    key_prefix   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX api_keys_user_id ON api_keys (user_id);
