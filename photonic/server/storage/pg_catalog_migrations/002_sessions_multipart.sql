-- What the embedded catalog's migrations 011 and 012 add: S3 multipart uploads in progress
-- (storage/s3.py; an upload cut on one server resumes on another) and the dashboard's login
-- sessions (only the cookie's SHA-256 is kept), so every server sharing the catalog knows
-- them. The statements that use them are shared with SQLite (catalog_multipart.py,
-- catalog_sessions.py).
CREATE TABLE multipart_uploads (
    sha256      TEXT COLLATE "C" PRIMARY KEY,
    size        BIGINT NOT NULL,
    staging_key TEXT NOT NULL,
    upload_id   TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE multipart_parts (
    sha256      TEXT COLLATE "C" NOT NULL REFERENCES multipart_uploads (sha256)
                ON DELETE CASCADE,
    part_number INTEGER NOT NULL,
    etag        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    PRIMARY KEY (sha256, part_number)
);

CREATE TABLE web_sessions (
    digest      TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    seq         BIGINT NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_ms);
CREATE INDEX web_sessions_by_age ON web_sessions (seq);
