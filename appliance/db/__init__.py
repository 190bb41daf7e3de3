"""Database: SQLModel tables, engine, Alembic migrations."""
