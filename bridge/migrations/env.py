"""Alembic environment: the engine is handed in by ``bridge.db.migrate`` (never read from a URL here)."""

from alembic import context

from bridge.db import import_models

target_metadata = import_models().metadata


def run_migrations_online() -> None:
    engine = context.config.attributes["engine"]
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


run_migrations_online()
