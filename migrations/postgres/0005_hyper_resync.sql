-- The hyper bridge: objects a resync sends again (`arcbase hyper resync`), and where the walk
-- through each type's objects stands, so an interrupted resync continues.
CREATE TABLE IF NOT EXISTS arcbase_hyper_resync (
    target       TEXT COLLATE "C" NOT NULL,
    instance_id  TEXT COLLATE "C" NOT NULL,
    type_name    TEXT COLLATE "C" NOT NULL,
    object_id    TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (target, instance_id, type_name, object_id)
);
CREATE TABLE IF NOT EXISTS arcbase_hyper_resync_from (
    target       TEXT COLLATE "C" NOT NULL,
    instance_id  TEXT COLLATE "C" NOT NULL,
    type_name    TEXT COLLATE "C" NOT NULL,
    last_id      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (target, instance_id, type_name)
);
