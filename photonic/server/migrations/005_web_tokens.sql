-- Admin tokens for the web API and dashboard: only the SHA-256 of each token is kept (the
-- token itself is printed once, when it is made), under a name that the audit log shows as
-- the actor `web:<name>`.
CREATE TABLE web_tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    sha256      TEXT NOT NULL UNIQUE,
    created_ms  INTEGER NOT NULL
);
