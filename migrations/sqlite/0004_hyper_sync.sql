-- The hyper bridge (SQLite): where each target's sync stands in the change feed, and the
-- objects it could not deliver.
CREATE TABLE IF NOT EXISTS arcbase_hyper_sync (
    -- 'builtin', or the remote's URL without its credentials
    target        TEXT PRIMARY KEY,
    -- every change at or before this feed position has been delivered
    position      INTEGER NOT NULL DEFAULT 0,
    -- the node holding the sync, and until when (ms since the epoch)
    locked_by     TEXT,
    locked_until  INTEGER NOT NULL DEFAULT 0,
    -- why the sync is paused (401/403 from the remote), until when (ms)
    paused        TEXT,
    paused_until  INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    sent          INTEGER NOT NULL DEFAULT 0,
    updated_at    TEXT NOT NULL
);

-- Objects a target refused (400/422), with the reason; `arcbase hyper retry` sends them again.
CREATE TABLE IF NOT EXISTS arcbase_hyper_dead (
    target       TEXT NOT NULL,
    instance_id  TEXT NOT NULL,
    type_name    TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    service      TEXT NOT NULL,
    status       INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    retry        INTEGER NOT NULL DEFAULT 0,
    at           TEXT NOT NULL,
    PRIMARY KEY (target, instance_id, type_name, object_id, service)
);
