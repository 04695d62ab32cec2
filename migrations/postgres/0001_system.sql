-- System tables of arcbase (PostgreSQL). App tables are created from each app's model, not here.

-- Instances (tenants). One `default` instance exists from the start.
CREATE TABLE IF NOT EXISTS arcbase_instances (
    id          TEXT COLLATE "C" PRIMARY KEY,
    domain      TEXT COLLATE "C" NOT NULL UNIQUE,
    app         TEXT COLLATE "C" NOT NULL,
    created_at  TEXT NOT NULL
);
INSERT INTO arcbase_instances (id, domain, app, created_at)
VALUES ('default', 'default', 'default', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
ON CONFLICT DO NOTHING;

-- The change feed: one row per object write, committed with the write itself.
CREATE TABLE IF NOT EXISTS arcbase_changes (
    seq          BIGSERIAL PRIMARY KEY,
    instance_id  TEXT COLLATE "C" NOT NULL,
    type_name    TEXT COLLATE "C" NOT NULL,
    object_id    TEXT COLLATE "C" NOT NULL,
    operation    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    changed_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS arcbase_changes_object ON arcbase_changes (instance_id, type_name, object_id);
