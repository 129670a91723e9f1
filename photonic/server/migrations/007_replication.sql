-- Replication to archive nodes (server/replication/). A primary records here what each of its
-- backup nodes confirmed durably holding (a COMMITTED or HAVE answer on the node's SyncBatch):
-- contents by SHA-256, for copy counts and repair, and library versions, so that the paths
-- and versions of the catalog reach the node too. What a node lacks is what is not here.
CREATE TABLE replica_confirmations (
    node         TEXT    NOT NULL,
    sha256       TEXT    NOT NULL,
    confirmed_ms INTEGER NOT NULL,
    PRIMARY KEY (node, sha256)
) WITHOUT ROWID;
CREATE INDEX replica_confirmations_by_sha ON replica_confirmations (sha256);

CREATE TABLE replica_versions (
    node         TEXT    NOT NULL,
    location_id  INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    confirmed_ms INTEGER NOT NULL,
    PRIMARY KEY (node, location_id, version)
) WITHOUT ROWID;
