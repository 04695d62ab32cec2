-- The hyper bridge (PostgreSQL): where each target's sync stands in the change feed, and the
-- objects it could not deliver.
CREATE TABLE IF NOT EXISTS arcbase_hyper_sync (
    -- 'builtin', or the remote's URL without its credentials
    target        TEXT COLLATE "C" PRIMARY KEY,
    -- every change at or before this feed position has been delivered
    position      BIGINT NOT NULL DEFAULT 0,
    -- the node holding the sync, and until when (ms since the epoch)
    locked_by     TEXT,
    locked_until  BIGINT NOT NULL DEFAULT 0,
    -- why the sync is paused (401/403 from the remote), until when (ms)
    paused        TEXT,
    paused_until  BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    sent          BIGINT NOT NULL DEFAULT 0,
    updated_at    TEXT NOT NULL
);

-- Objects a target refused (400/422), with the reason; `arcbase hyper retry` sends them again.
CREATE TABLE IF NOT EXISTS arcbase_hyper_dead (
    target       TEXT COLLATE "C" NOT NULL,
    instance_id  TEXT COLLATE "C" NOT NULL,
    type_name    TEXT COLLATE "C" NOT NULL,
    object_id    TEXT COLLATE "C" NOT NULL,
    service      TEXT COLLATE "C" NOT NULL,
    status       BIGINT NOT NULL,
    reason       TEXT NOT NULL,
    retry        BIGINT NOT NULL DEFAULT 0,
    at           TEXT NOT NULL,
    PRIMARY KEY (target, instance_id, type_name, object_id, service)
);

-- Search terms go straight into the GIN index rather than its pending list, which every
-- query would scan until a vacuum flushed it (bulk loads made queries 50x slower).
ALTER INDEX hyper_search_terms_tsv SET (fastupdate = off);
