-- Leases handed back unrun (no free slot, a worker shutting down, a plugin gone). Each took an
-- attempt number, the fencing token that only goes up, but is no try: attempts - handbacks is
-- what a person compares with max_attempts (failures alone decide a retry).
ALTER TABLE jobs ADD COLUMN handbacks INTEGER NOT NULL DEFAULT 0;
