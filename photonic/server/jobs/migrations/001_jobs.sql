-- The job queue: every job, its leases (attempt = fencing token), its outputs, and the
-- durations that scale the next timeouts of its kind.
CREATE TABLE jobs (
    job_id           TEXT PRIMARY KEY,
    parent_id        TEXT NOT NULL DEFAULT '',
    kind             TEXT NOT NULL,
    batch_kind       TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL,
    input_sha256     TEXT NOT NULL DEFAULT '',
    input_path       TEXT NOT NULL DEFAULT '',
    input_size       INTEGER NOT NULL DEFAULT 0,
    input_pixels     INTEGER NOT NULL DEFAULT 0,
    params_json      TEXT NOT NULL DEFAULT '{}',
    requires         TEXT NOT NULL DEFAULT '',
    priority         INTEGER NOT NULL DEFAULT 0,
    submitter        TEXT NOT NULL DEFAULT '',
    worker_id        TEXT NOT NULL DEFAULT '',
    attempts         INTEGER NOT NULL DEFAULT 0,
    failures         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL DEFAULT 3,
    error            TEXT NOT NULL DEFAULT '',
    progress         REAL NOT NULL DEFAULT 0,
    progress_message TEXT NOT NULL DEFAULT '',
    lease_expires_ms INTEGER NOT NULL DEFAULT 0,
    timeout_ms       INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    started_ms       INTEGER NOT NULL DEFAULT 0,
    finished_ms      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_by_state ON jobs (state, priority DESC, created_ms);
CREATE INDEX jobs_by_parent ON jobs (parent_id, state);

CREATE TABLE job_outputs (
    job_id       TEXT NOT NULL REFERENCES jobs (job_id),
    sha256       TEXT NOT NULL,
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL,
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
    size    INTEGER NOT NULL,
    PRIMARY KEY (job_id, attempt, sha256)
);

CREATE TABLE job_durations (
    kind        TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    recorded_ms INTEGER NOT NULL
);
CREATE INDEX job_durations_by_kind ON job_durations (kind, recorded_ms);
