-- What each agent last reported as still only in its queue, by shoot (HeartbeatRequest
-- pending_shoots): replaced as a whole by each heartbeat, in the heartbeat's transaction.
CREATE TABLE agent_pending_shoots (
    agent_id    TEXT    NOT NULL,
    watch_name  TEXT    NOT NULL,
    folder      TEXT    NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    files       INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    camera      TEXT    NOT NULL DEFAULT '',
    reported_ms INTEGER NOT NULL
);
CREATE INDEX agent_pending_shoots_by_agent ON agent_pending_shoots (agent_id);

-- The safety view reads photos newest capture first and stops once it has the shoots it
-- shows, instead of reading the whole catalog.
CREATE INDEX photos_by_capture_time ON photos (capture_time_ms);
