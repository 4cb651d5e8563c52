"""Migrations: upgrade to head leaves nothing for autogenerate; downgrade and upgrade again work."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from alembic import command

from app.cli import alembic_config
from tests.conftest import BACKENDS, _pg_admin, _pg_url


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_upgrade_check_downgrade_upgrade(backend_name: str, tmp_path: Path) -> None:
    name = f"suphub_mig_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    if backend_name == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    else:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        url = _pg_url(name)
    try:
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.check(config)  # raises when the models and the migrations disagree
        command.downgrade(config, "base")
        command.upgrade(config, "head")
        command.check(config)
    finally:
        if backend_name == "postgres":
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
