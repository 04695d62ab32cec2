-- The same dataset as plain tables for PostGraphile (ids are integers there).
DROP TABLE IF EXISTS message;
DROP TABLE IF EXISTS account;
CREATE TABLE account (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE message (id serial PRIMARY KEY, text text, score int, account_id int REFERENCES account (id));
CREATE INDEX message_account_id ON message (account_id);
INSERT INTO account (name) SELECT 'member ' || i FROM generate_series(1, 1000) i;
INSERT INTO message (text, score, account_id)
  SELECT 'message ' || i, (i * 37) % 100, ((i - 1) % 1000) + 1 FROM generate_series(1, 100000) i;
SELECT setval('message_id_seq', 100000);
ANALYZE;
