-- Realtime: a DELETE's row names the deleted object's owner (`hypi_created_by`), so a
-- subscription can tell whether its subscriber could read the object it no longer can.
ALTER TABLE arcbase_changes ADD COLUMN owner TEXT;
-- How far the change feed has been pruned (a cursor before it has expired).
CREATE TABLE IF NOT EXISTS arcbase_feed_pruned (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    upto  INTEGER NOT NULL
);
INSERT INTO arcbase_feed_pruned (id, upto) VALUES (1, 0) ON CONFLICT DO NOTHING;
