-- Tiers are data (`[tiers.<name>]` in the configuration), so `users.tier` holds any tier
-- name; the server checks it against the configuration.
--
-- SQLite cannot drop a CHECK constraint and rebuilds `users` and `api_keys` for it.
-- PostgreSQL can: the constraint named in 0001 is replaced in place, and the rows, the
-- keys' foreign key and the indexes stay as they are (no risk of cascading deletes).

ALTER TABLE users DROP CONSTRAINT users_tier_check;
ALTER TABLE users ADD CONSTRAINT users_tier_check CHECK (length(tier) BETWEEN 1 AND 32);
