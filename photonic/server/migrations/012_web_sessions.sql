-- The sessions a dashboard login opens, in the catalog rather than one process's memory, so a
-- server restart does not log browsers out and every server sharing the catalog knows them.
-- Only the SHA-256 of the session cookie is kept; the CSRF token is answered to the session
-- on GET /api/v1/session, so it is kept as it is (useless without the cookie).
CREATE TABLE IF NOT EXISTS web_sessions (
    digest      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    seq         INTEGER NOT NULL  -- login order: beyond the number kept the oldest end
);
CREATE INDEX IF NOT EXISTS web_sessions_by_expiry ON web_sessions (expires_ms);
CREATE INDEX IF NOT EXISTS web_sessions_by_age ON web_sessions (seq);
