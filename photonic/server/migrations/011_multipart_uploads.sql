-- storage.objects: s3:// (server/storage/s3.py): each S3 multipart upload in progress, so an
-- upload interrupted on one server (or by a restart) is resumed from the end of its last
-- completed part. A row is written before its first part is uploaded and deleted once the
-- object is at its content address (or the upload is aborted).
CREATE TABLE IF NOT EXISTS multipart_uploads (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,      -- the content's declared size
    staging_key TEXT NOT NULL,  -- the key the multipart upload completes into
    upload_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS multipart_parts (
    sha256 TEXT NOT NULL REFERENCES multipart_uploads (sha256) ON DELETE CASCADE,
    part_number INTEGER NOT NULL,  -- 1, 2, ...: parts are written in order, none skipped
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (sha256, part_number)
) WITHOUT ROWID;
