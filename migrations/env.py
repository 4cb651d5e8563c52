"""Alembic environment: async engine from the hub's settings (or ``-x url=...``)."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from app.config import get_settings
from app.db import create_engine
from app.models import Base
from app.models.asset import PG_ONLY_INDEXES
from app.services.partitions import is_partition

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our TypeDecorators as plain SQLAlchemy types: migrations import nothing from app."""
    if type_ == "type" and obj.__class__.__name__ == "UTCDateTime":
        return "sa.DateTime(timezone=True)"
    return False


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Time partitions of the sample tables are made at run time, and the trigram indexes exist on
    PostgreSQL only: neither is in the models, so autogenerate must not see them."""
    if type_ == "index" and name in PG_ONLY_INDEXES:
        return False
    return not (type_ == "table" and name is not None and is_partition(name))


def _database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    return url or config.attributes.get("database_url") or get_settings().resolved_database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_item=_render_item,
        include_name=_include_name,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    # a migration may rewrite a large table: no statement limit (§13)
    engine = create_engine(get_settings(), _database_url(), statement_timeout_s=0)
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
        await connection.commit()
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    asyncio.run(_run_async())


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
