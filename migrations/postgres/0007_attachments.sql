-- `@hyper(attachments: true)`: the files of each object (their bytes are in the storage
-- service under `<Type>/<id>/<name>`). `gone`: the object or the file was deleted and the
-- bytes wait to be removed from storage.
CREATE TABLE IF NOT EXISTS arcbase_attachments (
    instance_id   TEXT COLLATE "C" NOT NULL,
    type_name     TEXT COLLATE "C" NOT NULL,
    object_id     TEXT COLLATE "C" NOT NULL,
    name          TEXT COLLATE "C" NOT NULL,
    size          BIGINT NOT NULL,
    content_type  TEXT NOT NULL,
    url           TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    gone          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (instance_id, type_name, object_id, name)
);
CREATE INDEX IF NOT EXISTS arcbase_attachments_gone ON arcbase_attachments (gone) WHERE gone = 1;
