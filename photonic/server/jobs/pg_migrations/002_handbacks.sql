-- Leases handed back unrun, as in the SQLite queue's migrations/003_handbacks.sql.
ALTER TABLE jobs ADD COLUMN handbacks INTEGER NOT NULL DEFAULT 0;
