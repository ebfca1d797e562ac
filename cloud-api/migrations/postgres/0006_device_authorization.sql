-- OAuth 2.0 Device Authorization Grant (RFC 8628): `tandem login` asks for a code, the
-- user confirms it in a browser, and the polling CLI receives an API key.
--
-- The device code is a bearer secret until it is used: only its SHA-256 is stored. The
-- user code is short and typed by people; it is unique among codes not yet expired.

CREATE TABLE device_codes (
    device_code_hash BYTEA PRIMARY KEY NOT NULL,
    user_code        TEXT NOT NULL,
    -- The OAuth client that asked (`tandem-cli`).
    client_id        TEXT NOT NULL,
    -- Scopes the key will have, space-separated.
    scopes           TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    -- Seconds the client must wait between polls; raised by `slow_down`.
    interval_secs    BIGINT NOT NULL,
    last_polled_at   TIMESTAMPTZ,
    -- `pending`, `approved`, `denied`, `used`.
    status           TEXT NOT NULL DEFAULT 'pending'
                     CONSTRAINT device_codes_status_check
                     CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    -- Who approved (or denied) it.
    user_id          TEXT REFERENCES users (id) ON DELETE CASCADE,
    decided_at       TIMESTAMPTZ,
    -- The key issued when the client collected it.
    key_id           TEXT
);

CREATE UNIQUE INDEX device_codes_user_code ON device_codes (user_code);
CREATE INDEX device_codes_expires_at ON device_codes (expires_at);
