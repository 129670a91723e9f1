"""State that requests share across a server, and across servers once several share one
PostgreSQL: upload claims, the library lock and the event hub, each an interface with an
in-process implementation (the embedded default) and a PostgreSQL one."""
