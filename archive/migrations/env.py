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
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch mode rebuilds a table (copy, drop, rename), and the drop of a table other
            # rows refer to fails while foreign keys are enforced. SQLite ignores this pragma
            # inside a transaction, hence on the driver's connection before the migrations'
            # transaction begins; every reference is checked again before it commits.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            compare_type=compare_type,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration left rows referring to nothing: {broken[:10]}")
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, compare_type=compare_type
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
