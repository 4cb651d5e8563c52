"""Files the hub ships beside its package (``alembic.ini`` and ``migrations/``)."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _alembic_ini() -> Path:
    configured = os.environ.get("SUPHUB_ALEMBIC_INI")
    if configured:
        return Path(configured)
    beside = ROOT / "alembic.ini"
    return beside if beside.exists() else Path.cwd() / "alembic.ini"


ALEMBIC_INI = _alembic_ini()
