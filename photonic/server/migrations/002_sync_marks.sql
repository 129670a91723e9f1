-- One row a durability barrier rewrites: a commit with synchronous=FULL fsyncs the WAL, and
-- with it every earlier commit made with synchronous=NORMAL (see photonic/server/durability.py).
CREATE TABLE sync_marks (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO sync_marks (id, n) VALUES (1, 0);
