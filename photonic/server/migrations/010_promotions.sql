-- `photonic server promote` (server/promote.py): the library folder renames an archive node's
-- promotion still owes after its catalog transaction committed. Written in that transaction,
-- each row deleted once its rename is done and durable, so a crash between the commit and the
-- last rename is finished by running the command again.
CREATE TABLE promotion_renames (
    source TEXT PRIMARY KEY,  -- relative to the storage root: library/<primary>/<agent>
    target TEXT NOT NULL      -- library/<agent>
) WITHOUT ROWID;
