//! Persistence: PostgreSQL and SQLite.
