-- Realtime: a DELETE's row names the deleted object's owner (`hypi_created_by`), so a
-- subscription can tell whether its subscriber could read the object it no longer can.
ALTER TABLE arcbase_changes ADD COLUMN owner TEXT;
-- How far the change feed has been pruned (a cursor before it has expired).
CREATE TABLE IF NOT EXISTS arcbase_feed_pruned (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    upto  BIGINT NOT NULL
);
INSERT INTO arcbase_feed_pruned (id, upto) VALUES (1, 0) ON CONFLICT DO NOTHING;
-- Every statement that appends to the feed wakes the listening nodes when it commits (one
-- notification per transaction: PostgreSQL folds identical ones). The feed stays the truth:
-- a lost notification only delays a reader until its next look.
CREATE OR REPLACE FUNCTION arcbase_changes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('arcbase_changes', '');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS arcbase_changes_notify ON arcbase_changes;
CREATE TRIGGER arcbase_changes_notify AFTER INSERT ON arcbase_changes
    FOR EACH STATEMENT EXECUTE FUNCTION arcbase_changes_notify();
