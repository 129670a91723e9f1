-- The agent's durable state: the index of every file seen, the upload queue, the watches.

-- One row per file ever seen in a watch folder. (size, mtime_ns, inode) decide whether a file
-- must be hashed again; synced_sha256 is what the server last COMMITTED or HAVE'd for the path
-- (the base of the next version). seen_gen is the watch's scan generation that last saw the
-- file, so a reconcile scan finds vanished files with one query instead of a set in memory.
CREATE TABLE files (
    watch_name      TEXT    NOT NULL,
    rel_path        TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    mtime_ns        INTEGER NOT NULL,
    inode           INTEGER NOT NULL,
    sha256          TEXT    NOT NULL,
    synced_sha256   TEXT    NOT NULL DEFAULT '',
    capture_time_ms INTEGER NOT NULL DEFAULT 0,
    camera_make     TEXT    NOT NULL DEFAULT '',
    camera_model    TEXT    NOT NULL DEFAULT '',
    lens_model      TEXT    NOT NULL DEFAULT '',
    has_gps         INTEGER NOT NULL DEFAULT 0,
    width           INTEGER NOT NULL DEFAULT 0,
    height          INTEGER NOT NULL DEFAULT 0,
    orientation     INTEGER NOT NULL DEFAULT 0,
    missing         INTEGER NOT NULL DEFAULT 0,
    seen_gen        INTEGER NOT NULL DEFAULT 0,
    updated_ms      INTEGER NOT NULL,
    PRIMARY KEY (watch_name, rel_path)
) WITHOUT ROWID;

-- What still has to reach the server. A row is deleted only on COMMITTED or HAVE.
CREATE TABLE queue (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    watch_name      TEXT    NOT NULL,
    rel_path        TEXT    NOT NULL,
    source_path     TEXT    NOT NULL,
    sha256          TEXT    NOT NULL,
    size            INTEGER NOT NULL,
    mtime_ns        INTEGER NOT NULL,
    capture_time_ms INTEGER NOT NULL DEFAULT 0,
    camera_make     TEXT    NOT NULL DEFAULT '',
    camera_model    TEXT    NOT NULL DEFAULT '',
    lens_model      TEXT    NOT NULL DEFAULT '',
    has_gps         INTEGER NOT NULL DEFAULT 0,
    width           INTEGER NOT NULL DEFAULT 0,
    height          INTEGER NOT NULL DEFAULT 0,
    orientation     INTEGER NOT NULL DEFAULT 0,
    base_sha256     TEXT    NOT NULL DEFAULT '',
    incomplete      INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'error')),
    enqueued_ms     INTEGER NOT NULL,
    UNIQUE (watch_name, rel_path),
    FOREIGN KEY (watch_name, rel_path) REFERENCES files (watch_name, rel_path) ON DELETE CASCADE
);

CREATE INDEX queue_state ON queue (state, id);

-- One row per configured watch folder, for `photonic status` and the freeze rule.
CREATE TABLE watches (
    name        TEXT    PRIMARY KEY,
    path        TEXT    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'missing', 'frozen')),
    reason      TEXT    NOT NULL DEFAULT '',
    file_count  INTEGER NOT NULL DEFAULT 0,
    scan_gen    INTEGER NOT NULL DEFAULT 0,
    updated_ms  INTEGER NOT NULL DEFAULT 0
);
