-- The server catalog on PostgreSQL: the tables of the SQLite catalog's migrations 001-006 and
-- 009 as they stand after 010, in one step. BIGINT wherever SQLite's INTEGER may exceed 2^31
-- (sizes, times in ms and ns, pixel counts); seq columns stand in for SQLite's rowid where the
-- code orders by insertion. Not here: the replication ledger (007) and the scrub's progress
-- (008) stay in the server's local catalog.db, and the promotion renames (010) belong to
-- `photonic server promote`, which works on an embedded installation only.
CREATE TABLE photos (
    seq             BIGSERIAL NOT NULL UNIQUE,
    sha256          TEXT COLLATE "C" PRIMARY KEY,
    size            BIGINT NOT NULL,
    stored_ms       BIGINT NOT NULL,
    capture_time_ms BIGINT NOT NULL DEFAULT 0,
    camera          TEXT COLLATE "C" NOT NULL DEFAULT '',
    lens            TEXT COLLATE "C" NOT NULL DEFAULT '',
    has_gps         INTEGER NOT NULL DEFAULT 0,
    width           BIGINT NOT NULL DEFAULT 0,
    height          BIGINT NOT NULL DEFAULT 0
);
-- The safety view reads photos newest capture first (SQLite: capture_time_ms, then rowid).
CREATE INDEX photos_by_capture_time ON photos (capture_time_ms, seq);

CREATE TABLE agents (
    agent_id        TEXT COLLATE "C" PRIMARY KEY,
    hostname        TEXT COLLATE "C" NOT NULL DEFAULT '',
    version         TEXT COLLATE "C" NOT NULL DEFAULT '',
    first_seen_ms   BIGINT NOT NULL,
    last_seen_ms    BIGINT NOT NULL,
    last_sync_ms    BIGINT NOT NULL DEFAULT 0,
    state           TEXT COLLATE "C" NOT NULL DEFAULT 'offline',
    queue_depth     BIGINT NOT NULL DEFAULT 0,
    bytes_pending   BIGINT NOT NULL DEFAULT 0,
    missing_watches TEXT COLLATE "C" NOT NULL DEFAULT '',
    paused          INTEGER NOT NULL DEFAULT 0,
    admin_paused    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE locations (
    id           BIGSERIAL PRIMARY KEY,
    agent_id     TEXT COLLATE "C" NOT NULL,
    watch_name   TEXT COLLATE "C" NOT NULL,
    rel_path     TEXT COLLATE "C" NOT NULL,
    head_version INTEGER NOT NULL,
    folder       TEXT COLLATE "C" NOT NULL DEFAULT '',
    UNIQUE (agent_id, watch_name, rel_path)
);
-- A library level reads only the paths directly in it, in path order.
CREATE INDEX locations_by_folder ON locations (agent_id, watch_name, folder, rel_path);

CREATE TABLE versions (
    seq          BIGSERIAL NOT NULL UNIQUE,
    location_id  BIGINT NOT NULL REFERENCES locations (id),
    version      INTEGER NOT NULL,
    sha256       TEXT COLLATE "C" NOT NULL REFERENCES photos (sha256),
    library_path TEXT COLLATE "C" NOT NULL,
    created_ms   BIGINT NOT NULL,
    mtime_ns     BIGINT NOT NULL DEFAULT 0,
    incomplete   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (location_id, version)
);
CREATE INDEX versions_by_sha ON versions (sha256);

CREATE TABLE conflicts (
    id                BIGSERIAL PRIMARY KEY,
    location_id       BIGINT NOT NULL REFERENCES locations (id),
    server_sha256     TEXT COLLATE "C" NOT NULL,
    incoming_sha256   TEXT COLLATE "C" NOT NULL REFERENCES photos (sha256),
    incoming_mtime_ns BIGINT NOT NULL DEFAULT 0,
    created_ms        BIGINT NOT NULL,
    resolved_ms       BIGINT,
    resolution        TEXT COLLATE "C"
);
CREATE INDEX conflicts_open ON conflicts (resolved_ms);
CREATE INDEX conflicts_by_location ON conflicts (location_id);

CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    ts_ms   BIGINT NOT NULL,
    actor   TEXT COLLATE "C" NOT NULL,
    action  TEXT COLLATE "C" NOT NULL,
    target  TEXT COLLATE "C" NOT NULL DEFAULT '',
    result  TEXT COLLATE "C" NOT NULL,
    detail  TEXT COLLATE "C" NOT NULL DEFAULT ''
);

-- The row make_durable rewrites with a synchronous commit: PostgreSQL flushes its WAL up to
-- that commit, and with it every earlier commit made with synchronous_commit = off.
CREATE TABLE sync_marks (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO sync_marks (id, n) VALUES (1, 0);

CREATE TABLE object_checks (
    sha256      TEXT COLLATE "C"   PRIMARY KEY,
    size        BIGINT NOT NULL,
    mtime_ns    BIGINT NOT NULL,
    verified_ms BIGINT NOT NULL
);

CREATE TABLE quarantine (
    id             BIGSERIAL PRIMARY KEY,
    sha256         TEXT COLLATE "C"   NOT NULL,
    quarantined_ms BIGINT NOT NULL,
    file           TEXT COLLATE "C"   NOT NULL,
    reason         TEXT COLLATE "C"   NOT NULL,
    repaired_ms    BIGINT
);
CREATE INDEX quarantine_open ON quarantine (sha256) WHERE repaired_ms IS NULL;

CREATE TABLE web_tokens (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL UNIQUE,
    sha256      TEXT COLLATE "C" NOT NULL UNIQUE,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE agent_pending_shoots (
    agent_id    TEXT COLLATE "C"   NOT NULL,
    watch_name  TEXT COLLATE "C"   NOT NULL,
    folder      TEXT COLLATE "C"   NOT NULL,
    start_ms    BIGINT NOT NULL,
    end_ms      BIGINT NOT NULL,
    files       BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    camera      TEXT COLLATE "C"   NOT NULL DEFAULT '',
    reported_ms BIGINT NOT NULL
);
CREATE INDEX agent_pending_shoots_by_agent ON agent_pending_shoots (agent_id);

-- The dashboard's summaries, kept by each version's own transaction (pg_catalog_writes):
-- increments under ON CONFLICT DO UPDATE, which takes the row's lock, so two servers adding
-- to one agent's totals at once both count.
CREATE TABLE agent_totals (
    agent_id TEXT COLLATE "C"   PRIMARY KEY,
    photos   BIGINT NOT NULL,
    bytes    BIGINT NOT NULL
);

CREATE TABLE library_folders (
    agent_id   TEXT COLLATE "C" NOT NULL,
    watch_name TEXT COLLATE "C" NOT NULL,
    parent     TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (agent_id, watch_name, parent, name)
);
