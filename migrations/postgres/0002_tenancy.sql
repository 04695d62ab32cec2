-- Apps publish releases; instances run one release each; settings hold shared secrets.
CREATE TABLE IF NOT EXISTS arcbase_releases (
    app         TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    sdl         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (app, name),
    UNIQUE (app, seq)
);
ALTER TABLE arcbase_instances ADD COLUMN IF NOT EXISTS release_name TEXT COLLATE "C";
ALTER TABLE arcbase_instances ADD COLUMN IF NOT EXISTS anonymous_requests BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE arcbase_instances ADD COLUMN IF NOT EXISTS anonymous_registrations BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE arcbase_instances ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 1;
CREATE TABLE IF NOT EXISTS arcbase_settings (
    key    TEXT COLLATE "C" PRIMARY KEY,
    value  TEXT NOT NULL
);
