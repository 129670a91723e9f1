-- A file the server refused for good (a path its storage cannot hold, a size over its limit)
-- is not offered again at every start, as files that merely ran out of attempts are: only
-- once its content changes (a new SHA-256 resets the row) or it moves (a new row).
ALTER TABLE queue ADD COLUMN permanent INTEGER NOT NULL DEFAULT 0;
