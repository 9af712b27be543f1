"""Alembic migrations (async env, render_as_batch for SQLite)."""
