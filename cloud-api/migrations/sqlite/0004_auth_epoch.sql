-- Changes a server's key cache must not outlive: a user's tier changed, a key revoked or
-- deleted, a user deleted. Triggers count them in one row whichever process makes the
-- change (the admin CLI, another instance); every server polls the count and empties its
-- key cache when it moves, so such changes apply within the poll interval instead of the
-- cache's lifetime.

CREATE TABLE auth_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);

INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);

CREATE TRIGGER users_tier_changed AFTER UPDATE OF tier ON users
    WHEN OLD.tier IS NOT NEW.tier
BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

-- `last_used_at` updates (the usage writer's, many a second) do not fire this.
CREATE TRIGGER api_keys_revoked AFTER UPDATE OF revoked_at ON api_keys
    WHEN OLD.revoked_at IS NOT NEW.revoked_at
BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys
BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1;
END;
