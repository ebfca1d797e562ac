-- Changes a server's key cache must not outlive: a user's tier changed, a key revoked or
-- deleted, a user deleted. Triggers count them in one row whichever process makes the
-- change (the admin CLI, another instance); every server polls the count and empties its
-- key cache when it moves, so such changes apply within the poll interval instead of the
-- cache's lifetime.
--
-- PostgreSQL triggers run a function: one PL/pgSQL function does the counting for every
-- trigger (0007's too). The triggers are FOR EACH ROW, as SQLite's always are, with the
-- same conditions (`IS DISTINCT FROM` is SQLite's `IS NOT`). Rows deleted by a cascade
-- fire them in both databases. The function counts in the `auth_epoch` of the schema of
-- the table that fired, as a SQLite trigger only sees its own database, whatever the
-- session's search_path.

CREATE TABLE auth_epoch (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);

INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);

CREATE FUNCTION auth_epoch_bump() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('UPDATE %I.auth_epoch SET epoch = epoch + 1 WHERE id = 1', TG_TABLE_SCHEMA);
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_tier_changed AFTER UPDATE OF tier ON users
    FOR EACH ROW WHEN (OLD.tier IS DISTINCT FROM NEW.tier)
    EXECUTE FUNCTION auth_epoch_bump();

CREATE TRIGGER users_deleted AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION auth_epoch_bump();

-- `last_used_at` updates (the usage writer's, many a second) do not fire this.
CREATE TRIGGER api_keys_revoked AFTER UPDATE OF revoked_at ON api_keys
    FOR EACH ROW WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at)
    EXECUTE FUNCTION auth_epoch_bump();

CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION auth_epoch_bump();
