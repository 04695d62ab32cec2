-- System tables of arcbase (SQLite). App tables are created from each app's model, not here.

-- Instances (tenants). One `default` instance exists from the start.
CREATE TABLE IF NOT EXISTS arcbase_instances (
    id          TEXT PRIMARY KEY,
    domain      TEXT NOT NULL UNIQUE,
    app         TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
INSERT OR IGNORE INTO arcbase_instances (id, domain, app, created_at)
VALUES ('default', 'default', 'default', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

-- The change feed: one row per object write, committed with the write itself.
CREATE TABLE IF NOT EXISTS arcbase_changes (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id  TEXT NOT NULL,
    type_name    TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    operation    TEXT NOT NULL,
    version      INTEGER NOT NULL,
    changed_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS arcbase_changes_object ON arcbase_changes (instance_id, type_name, object_id);
