-- The job queue on PostgreSQL: the same tables as the SQLite queue (migrations/001, 002), with
-- seq standing in for SQLite's rowid (submission order) and a partial index for the pending
-- jobs that dispatchers on every server read and lease with FOR UPDATE SKIP LOCKED.
CREATE TABLE jobs (
    seq              BIGSERIAL NOT NULL UNIQUE,
    job_id           TEXT PRIMARY KEY,
    parent_id        TEXT NOT NULL DEFAULT '',
    kind             TEXT NOT NULL,
    batch_kind       TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL,
    input_sha256     TEXT NOT NULL DEFAULT '',
    input_path       TEXT NOT NULL DEFAULT '',
    input_size       BIGINT NOT NULL DEFAULT 0,
    input_pixels     BIGINT NOT NULL DEFAULT 0,
    params_json      TEXT NOT NULL DEFAULT '{}',
    requires         TEXT NOT NULL DEFAULT '',
    priority         INTEGER NOT NULL DEFAULT 0,
    submitter        TEXT NOT NULL DEFAULT '',
    worker_id        TEXT NOT NULL DEFAULT '',
    attempts         INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    error            TEXT NOT NULL DEFAULT '',
    progress         DOUBLE PRECISION NOT NULL DEFAULT 0,
    progress_message TEXT NOT NULL DEFAULT '',
    lease_expires_ms BIGINT NOT NULL DEFAULT 0,
    timeout_ms       BIGINT NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms       BIGINT NOT NULL,
    updated_ms       BIGINT NOT NULL,
    started_ms       BIGINT NOT NULL DEFAULT 0,
    finished_ms      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_pending ON jobs (priority DESC, created_ms, seq) WHERE state = 'PENDING';
CREATE INDEX jobs_running ON jobs (lease_expires_ms) WHERE state IN ('READING', 'PROCESSING');
CREATE INDEX jobs_by_parent ON jobs (parent_id, state);
CREATE INDEX jobs_by_worker ON jobs (worker_id) WHERE state IN ('READING', 'PROCESSING');
CREATE INDEX jobs_by_input ON jobs (input_sha256);
CREATE INDEX jobs_by_created ON jobs (created_ms, seq);

CREATE TABLE job_outputs (
    seq          BIGSERIAL NOT NULL,
    job_id       TEXT NOT NULL REFERENCES jobs (job_id),
    sha256       TEXT NOT NULL,
    name         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    library_path TEXT NOT NULL DEFAULT '',
    recipe_json  TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (job_id, sha256)
);
CREATE INDEX job_outputs_by_sha ON job_outputs (sha256);

-- Objects a job's attempt uploaded and the server verified and stored, before its Done.
CREATE TABLE job_uploads (
    job_id  TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    sha256  TEXT NOT NULL,
    size    BIGINT NOT NULL,
    PRIMARY KEY (job_id, attempt, sha256)
);

CREATE TABLE job_durations (
    seq         BIGSERIAL PRIMARY KEY,
    kind        TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    recorded_ms BIGINT NOT NULL
);
CREATE INDEX job_durations_by_kind ON job_durations (kind, recorded_ms);
