-- What the server knows of each stored object's bytes. A HAVE (content already stored, send
-- nothing) is trusted only for an object whose last verification is recorded here and whose
-- size and mtime have not changed since; any other object is re-hashed before it is trusted.
-- verified_ms: when its bytes last hashed to its name (at commit, at a HAVE, by a verify run).
CREATE TABLE object_checks (
    sha256      TEXT    PRIMARY KEY,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    verified_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Objects found damaged and moved out of objects/ into quarantine/ (kept, never served).
-- repaired_ms is set once an agent's upload of the same content was stored in its place and
-- the library entries of that content were linked to it again.
CREATE TABLE quarantine (
    id             INTEGER PRIMARY KEY,
    sha256         TEXT    NOT NULL,
    quarantined_ms INTEGER NOT NULL,
    file           TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    repaired_ms    INTEGER
);
CREATE INDEX quarantine_open ON quarantine (sha256) WHERE repaired_ms IS NULL;
