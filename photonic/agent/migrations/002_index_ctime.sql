-- The index signature gains ctime and birth time: (size, mtime_ns, inode) alone miss a rewrite
-- in place that keeps the size and sets the mtime back (exiftool -P, cp -p over an existing
-- file, rsync -t --inplace), and such a photo's new bytes never reached the server. The
-- signature is now (size, mtime_ns, inode, ctime_ns, birth_ns); see photonic/agent/signature.py.
-- birth_ns is 0 where the platform reports no birth time.
--
-- Rows written before this migration never recorded a ctime: -1 (UNKNOWN_NS in signature.py)
-- matches no file, so each such file is hashed once more on the next scan or watcher event,
-- which records its real ctime. A file edited that way before the upgrade is caught then; one
-- unchanged costs one hash and queues nothing (same content as the server's).
ALTER TABLE files ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT -1;
ALTER TABLE files ADD COLUMN birth_ns INTEGER NOT NULL DEFAULT -1;
