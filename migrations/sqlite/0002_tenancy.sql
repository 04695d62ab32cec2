-- Apps publish releases; instances run one release each; settings hold shared secrets.
CREATE TABLE IF NOT EXISTS arcbase_releases (
    app         TEXT NOT NULL,
    name        TEXT NOT NULL,
    sdl         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (app, name),
    UNIQUE (app, seq)
);
ALTER TABLE arcbase_instances ADD COLUMN release_name TEXT;
ALTER TABLE arcbase_instances ADD COLUMN anonymous_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE arcbase_instances ADD COLUMN anonymous_registrations INTEGER NOT NULL DEFAULT 0;
ALTER TABLE arcbase_instances ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
CREATE TABLE IF NOT EXISTS arcbase_settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
