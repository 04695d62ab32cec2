-- The hyper services of each instance (SQLite). A store is a data store, cache, search index,
-- bucket or queue; everything in it hangs off its row and goes with it.
CREATE TABLE IF NOT EXISTS hyper_stores (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id  TEXT NOT NULL,
    service      TEXT NOT NULL,
    name         TEXT NOT NULL,
    -- search: {fields, storeFields}; queue: {secret}
    config       TEXT NOT NULL DEFAULT '{}',
    -- queue: where its jobs are posted (NULL: not yet set, jobs wait)
    target       TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (instance_id, service, name)
);

-- data: one row per document; `body` is the document as stored (key order kept).
CREATE TABLE IF NOT EXISTS hyper_docs (
    store_id  INTEGER NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    id        TEXT NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (store_id, id)
);

-- data: the indexes `_index` created (the real ones are expression indexes on hyper_docs).
CREATE TABLE IF NOT EXISTS hyper_indexes (
    store_id  INTEGER NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    fields    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (store_id, name)
);

-- cache: values with an optional expiry (Unix milliseconds).
CREATE TABLE IF NOT EXISTS hyper_cache (
    store_id    INTEGER NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    expires_at  INTEGER,
    PRIMARY KEY (store_id, key)
);
CREATE INDEX IF NOT EXISTS hyper_cache_expiry ON hyper_cache (expires_at) WHERE expires_at IS NOT NULL;

-- search: the documents of each index (the words are in the index's FTS5 table,
-- hyper_fts_<store id>).
CREATE TABLE IF NOT EXISTS hyper_search_docs (
    store_id  INTEGER NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (store_id, key)
);

-- storage: the objects of each bucket; the bytes are in the file `file` of the storage
-- directory, named by the server.
CREATE TABLE IF NOT EXISTS hyper_objects (
    store_id    INTEGER NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    file        TEXT NOT NULL UNIQUE,
    size        INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (store_id, name)
);

-- queue: jobs waiting (READY) or failed (ERROR); a delivered job is deleted. A node
-- delivering a job holds it until `locked_until` (Unix milliseconds).
CREATE TABLE IF NOT EXISTS hyper_jobs (
    id            TEXT PRIMARY KEY,
    store_id      INTEGER NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    job           TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    locked_until  INTEGER,
    error         TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hyper_jobs_due ON hyper_jobs (status, next_at);
CREATE INDEX IF NOT EXISTS hyper_jobs_store ON hyper_jobs (store_id, status, id);

-- App keys: a token signed with the key's secret acts for the key's instance. The secret is
-- not stored: it is derived from the server's secret and the salt.
CREATE TABLE IF NOT EXISTS hyper_keys (
    key          TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL,
    salt         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
