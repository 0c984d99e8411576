"""Alembic's environment for the catalog: ``ferryman.catalog.sql.migrate`` hands it an open
connection (``config.attributes["connection"]``); nothing here opens one."""

from alembic import context

connection = context.config.attributes["connection"]
# Batch mode lets a later migration alter a column on SQLite (by copying the table).
# Each migration is one transaction on both dialects (SQLite's DDL is transactional too, with
# the hand-begun transactions of catalog/sql/engines.py), so a crash leaves the old schema or
# the new one.
context.configure(connection=connection, render_as_batch=True, transaction_per_migration=True, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
