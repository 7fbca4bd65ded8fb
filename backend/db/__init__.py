"""Database access: the asyncpg pool, the migration runner and the embedded local server."""
