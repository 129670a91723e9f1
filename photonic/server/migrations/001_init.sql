-- The server catalog: every photo (content), every path it lives at, every version, every agent.
CREATE TABLE photos (
    sha256          TEXT PRIMARY KEY,
    size            INTEGER NOT NULL,
    stored_ms       INTEGER NOT NULL,
    capture_time_ms INTEGER NOT NULL DEFAULT 0,
    camera          TEXT NOT NULL DEFAULT '',
    lens            TEXT NOT NULL DEFAULT '',
    has_gps         INTEGER NOT NULL DEFAULT 0,
    width           INTEGER NOT NULL DEFAULT 0,
    height          INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE agents (
    agent_id        TEXT PRIMARY KEY,
    hostname        TEXT NOT NULL DEFAULT '',
    version         TEXT NOT NULL DEFAULT '',
    first_seen_ms   INTEGER NOT NULL,
    last_seen_ms    INTEGER NOT NULL,
    last_sync_ms    INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL DEFAULT 'offline',
    queue_depth     INTEGER NOT NULL DEFAULT 0,
    bytes_pending   INTEGER NOT NULL DEFAULT 0,
    missing_watches TEXT NOT NULL DEFAULT '',
    paused          INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE locations (
    id           INTEGER PRIMARY KEY,
    agent_id     TEXT NOT NULL,
    watch_name   TEXT NOT NULL,
    rel_path     TEXT NOT NULL,
    head_version INTEGER NOT NULL,
    UNIQUE (agent_id, watch_name, rel_path)
);

CREATE TABLE versions (
    location_id  INTEGER NOT NULL REFERENCES locations (id),
    version      INTEGER NOT NULL,
    sha256       TEXT NOT NULL REFERENCES photos (sha256),
    library_path TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL DEFAULT 0,
    incomplete   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (location_id, version)
);
CREATE INDEX versions_by_sha ON versions (sha256);

CREATE TABLE conflicts (
    id              INTEGER PRIMARY KEY,
    location_id     INTEGER NOT NULL REFERENCES locations (id),
    server_sha256   TEXT NOT NULL,
    incoming_sha256 TEXT NOT NULL REFERENCES photos (sha256),
    incoming_mtime_ns INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    resolved_ms     INTEGER,
    resolution      TEXT
);
CREATE INDEX conflicts_open ON conflicts (resolved_ms);

CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    ts_ms   INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL DEFAULT '',
    result  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
