-- Upload claims as rows (issue 20): one row per content being uploaded, naming the claims
-- session of the server that holds it. The session holds one advisory lock on its holder key
-- for as long as it lives, so a row whose holder's lock is gone (a SIGKILLed server) is free
-- for any other server at once. One lock per server rather than one per content: the lock
-- table is shared and small (max_locks_per_transaction x max_connections, 6,400 by default)
-- and a few large manifests filled it. UNLOGGED: claims are worth nothing after a database
-- crash (every session ends with it), so they cost no WAL.
CREATE UNLOGGED TABLE upload_claims (
    content TEXT PRIMARY KEY,
    holder  BIGINT NOT NULL
);
CREATE INDEX upload_claims_by_holder ON upload_claims (holder);
