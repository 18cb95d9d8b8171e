"""Alembic environment: runs migrations with the engine our settings describe.

Its target is every model module's metadata (:func:`archive.db.model_metadata`), so
``alembic revision --autogenerate`` sees every table.
"""

from alembic import context

from archive.db import compare_type, make_engine, model_metadata

config = context.config
target_metadata = model_metadata()


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=compare_type,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, compare_type=compare_type
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
