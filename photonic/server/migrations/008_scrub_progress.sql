-- Where the background scrub is in its walk over the stored objects, so a server restart
-- continues a pass instead of starting it again (one row). A pass walks objects in order of
-- sha256; cursor_sha256 is the last one checked ('' before the first).
CREATE TABLE scrub_progress (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    pass_started_ms   INTEGER NOT NULL DEFAULT 0,  -- 0: no pass has started yet
    in_pass           INTEGER NOT NULL DEFAULT 0,  -- 1 while a pass is under way
    cursor_sha256     TEXT    NOT NULL DEFAULT '',
    objects_checked   INTEGER NOT NULL DEFAULT 0,  -- in the current (or last) pass
    bytes_checked     INTEGER NOT NULL DEFAULT 0,
    damaged           INTEGER NOT NULL DEFAULT 0,
    last_completed_ms INTEGER NOT NULL DEFAULT 0   -- when the last full pass ended; 0: never
);
INSERT INTO scrub_progress (id) VALUES (1);
