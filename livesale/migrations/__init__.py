"""Alembic migrations of the livesale schema (``livesale db upgrade``)."""
