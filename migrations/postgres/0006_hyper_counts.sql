-- `@hyper(count: true)`: the number of live (untrashed) objects per instance and type, kept in
-- every write's transaction; `release` is the release it was counted under (a newly served
-- release recounts once).
CREATE TABLE IF NOT EXISTS arcbase_hyper_counts (
    instance_id  TEXT COLLATE "C" NOT NULL,
    type_name    TEXT COLLATE "C" NOT NULL,
    n            BIGINT NOT NULL,
    release      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (instance_id, type_name)
);
