-- Browser sign-in through OAuth 2.0 / OpenID Connect providers.
--
-- An identity is one account at one provider (`github`, `google`, a company's issuer),
-- named by the provider's stable subject, never by the email. Several identities may
-- belong to one user: the first sign-in with a verified email creates the user, later
-- ones with the same verified email join it.

CREATE TABLE identities (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The `[[auth.identity_providers]]` name.
    provider     TEXT NOT NULL,
    -- The provider's id for the account (`sub`, or GitHub's numeric user id).
    subject      TEXT NOT NULL,
    -- The verified email the provider gave at the last sign-in.
    email        TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_sign_in_at TIMESTAMPTZ NOT NULL,
    UNIQUE (provider, subject)
);

CREATE INDEX identities_user_id ON identities (user_id);

-- A sign-in in progress, between the redirect to the provider and its return. Keyed by
-- the SHA-256 of `state`; the PKCE verifier and the nonce never leave the server. Used
-- once: the callback deletes the row it reads.
CREATE TABLE sign_in_attempts (
    state_hash    BYTEA PRIMARY KEY NOT NULL,
    provider      TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    -- Where to go after signing in: a path on this server.
    next_path     TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX sign_in_attempts_expires_at ON sign_in_attempts (expires_at);
