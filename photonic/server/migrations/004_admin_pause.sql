-- A pause set by an admin is its own flag, which only an admin clears: an agent may pause and
-- resume itself (`paused`), but never lift an admin's pause. Syncing is refused while either
-- is set.
ALTER TABLE agents ADD COLUMN admin_paused INTEGER NOT NULL DEFAULT 0;
