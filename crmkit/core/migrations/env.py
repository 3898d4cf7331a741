"""Alembic environment for crmkit: the core's history plus one branch per plugin.

crmkit builds the Alembic ``Config`` in code (:mod:`crmkit.core.migrate`), so
there is no alembic.ini. Online runs use the connection crmkit hands over in
``config.attributes["connection"]``; offline runs (``--sql`` preview) use the
URL and the starting revisions crmkit read from the database.
"""

from alembic import context

from crmkit.core.tables import metadata

config = context.config


def include_object(obj, name, type_, reflected, compare_to):
    # autogenerate only looks at the tables of the branch being generated
    owned = config.attributes.get("owned_tables")
    if owned is None or type_ != "table":
        return True
    return name in owned


def run_offline() -> None:
    context.configure(
        url=config.attributes["url"],
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=include_object,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
