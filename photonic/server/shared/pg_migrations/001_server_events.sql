-- The shared event hub (issue 20): every server's events in one table, numbered by one
-- sequence, so the subscribers of every server see them in one order and a client resumes
-- by id on any server. Bounded to the hub's ring by the inserting server.
CREATE TABLE server_events (
    id            BIGSERIAL PRIMARY KEY,
    ring_only     BOOLEAN NOT NULL DEFAULT FALSE,
    kind          TEXT NOT NULL,
    agent_id      TEXT NOT NULL DEFAULT '',
    sha256        TEXT NOT NULL DEFAULT '',
    watch_name    TEXT NOT NULL DEFAULT '',
    relative_path TEXT NOT NULL DEFAULT '',
    detail        TEXT NOT NULL DEFAULT '',
    size          BIGINT NOT NULL DEFAULT 0,
    job_id        TEXT NOT NULL DEFAULT '',
    job_state     TEXT NOT NULL DEFAULT '',
    time_unix_ms  BIGINT NOT NULL
);

-- The numbering's name (the hub's epoch): made once with the database, so ids stay valid
-- across server restarts and a database made afresh (ids from 1 again) has another one.
CREATE TABLE server_events_epoch (
    one   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    epoch TEXT NOT NULL
);
INSERT INTO server_events_epoch (epoch)
VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 16));
