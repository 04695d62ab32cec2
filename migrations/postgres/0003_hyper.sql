-- The hyper services of each instance (PostgreSQL). A store is a data store, cache, search
-- index, bucket or queue; everything in it hangs off its row and goes with it.
CREATE TABLE IF NOT EXISTS hyper_stores (
    id           BIGSERIAL PRIMARY KEY,
    instance_id  TEXT COLLATE "C" NOT NULL,
    service      TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    -- search: {fields, storeFields}; queue: {secret}
    config       TEXT NOT NULL DEFAULT '{}',
    -- queue: where its jobs are posted (NULL: not yet set, jobs wait)
    target       TEXT,
    created_at   TEXT NOT NULL,
    UNIQUE (instance_id, service, name)
);

-- data: one row per document; `body` is the document as stored (key order kept), `doc` the
-- same as jsonb for selectors and indexes.
CREATE TABLE IF NOT EXISTS hyper_docs (
    store_id  BIGINT NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    id        TEXT COLLATE "C" NOT NULL,
    body      TEXT NOT NULL,
    doc       JSONB GENERATED ALWAYS AS (body::jsonb) STORED,
    PRIMARY KEY (store_id, id)
);

-- data: the indexes `_index` created (the real ones are partial expression indexes on
-- hyper_docs).
CREATE TABLE IF NOT EXISTS hyper_indexes (
    store_id  BIGINT NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    name      TEXT COLLATE "C" NOT NULL,
    fields    TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (store_id, name)
);

-- cache: values with an optional expiry (Unix milliseconds).
CREATE TABLE IF NOT EXISTS hyper_cache (
    store_id    BIGINT NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    key         TEXT COLLATE "C" NOT NULL,
    value       TEXT NOT NULL,
    expires_at  BIGINT,
    PRIMARY KEY (store_id, key)
);
CREATE INDEX IF NOT EXISTS hyper_cache_expiry ON hyper_cache (expires_at) WHERE expires_at IS NOT NULL;

-- search: the documents of each index, and their words per field.
CREATE TABLE IF NOT EXISTS hyper_search_docs (
    store_id  BIGINT NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    key       TEXT COLLATE "C" NOT NULL,
    body      TEXT NOT NULL,
    doc       JSONB GENERATED ALWAYS AS (body::jsonb) STORED,
    PRIMARY KEY (store_id, key)
);
CREATE TABLE IF NOT EXISTS hyper_search_terms (
    store_id  BIGINT NOT NULL,
    key       TEXT COLLATE "C" NOT NULL,
    field     TEXT COLLATE "C" NOT NULL,
    tsv       TSVECTOR NOT NULL,
    PRIMARY KEY (store_id, key, field),
    FOREIGN KEY (store_id, key) REFERENCES hyper_search_docs (store_id, key) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS hyper_search_terms_tsv ON hyper_search_terms USING GIN (tsv);

-- storage: the objects of each bucket; the bytes are in the file `file` of the storage
-- directory, named by the server.
CREATE TABLE IF NOT EXISTS hyper_objects (
    store_id    BIGINT NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    file        TEXT COLLATE "C" NOT NULL UNIQUE,
    size        BIGINT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (store_id, name)
);

-- queue: jobs waiting (READY) or failed (ERROR); a delivered job is deleted. A node
-- delivering a job holds it until `locked_until` (Unix milliseconds).
CREATE TABLE IF NOT EXISTS hyper_jobs (
    id            TEXT COLLATE "C" PRIMARY KEY,
    store_id      BIGINT NOT NULL REFERENCES hyper_stores (id) ON DELETE CASCADE,
    job           TEXT NOT NULL,
    status        TEXT COLLATE "C" NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL,
    locked_until  BIGINT,
    error         TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hyper_jobs_due ON hyper_jobs (status, next_at);
CREATE INDEX IF NOT EXISTS hyper_jobs_store ON hyper_jobs (store_id, status, id);

-- App keys: a token signed with the key's secret acts for the key's instance. The secret is
-- not stored: it is derived from the server's secret and the salt.
CREATE TABLE IF NOT EXISTS hyper_keys (
    key          TEXT COLLATE "C" PRIMARY KEY,
    instance_id  TEXT COLLATE "C" NOT NULL,
    salt         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
