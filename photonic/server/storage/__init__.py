"""Where the server keeps its state beyond the embedded defaults: the catalog on PostgreSQL
(pg_catalog), and the one factory that picks the catalog's backend from catalog.url."""
