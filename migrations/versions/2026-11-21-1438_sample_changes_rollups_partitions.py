"""sample change sequences, rollups, time partitions of raw samples

Raw metric and environment samples get ``change_seq`` (incremental sync and the rollup job
follow it; rows already stored are all committed and take 0). Rollup tables 5m / 1h / 1d per
kind and ``rollup_state``. On PostgreSQL both sample tables become tables partitioned by range
of ``ts`` with a default partition; the scheduler creates daily partitions ahead of time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 14:38:50.167697
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RESOLUTIONS = ("5m", "1h", "1d")


def _key_columns(kind: str) -> list[sa.Column]:
    columns = [sa.Column('platform_code', sa.String(length=64), nullable=False)]
    if kind == "metric":
        columns.append(sa.Column('series_id', sa.BigInteger(), autoincrement=False, nullable=False))
    else:
        columns += [
            sa.Column('room_code', sa.String(length=128), nullable=False),
            sa.Column('point_code', sa.String(length=128), nullable=False),
        ]
    return columns


def _create_rollup(kind: str, resolution: str) -> None:
    name = f"{kind}_rollup_{resolution}"
    keys = _key_columns(kind)
    op.create_table(
        name,
        *keys,
        sa.Column('bucket_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('total', sa.Float(), nullable=False),
        sa.Column('minimum', sa.Float(), nullable=False),
        sa.Column('maximum', sa.Float(), nullable=False),
        sa.Column('last_ts', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(*[c.name for c in keys], 'bucket_start', name=op.f(f'pk_{name}')),
        sqlite_with_rowid=False,
    )


def _sample_columns(table: str, *, with_seq: bool) -> list[sa.Column]:
    columns: list[sa.Column] = [sa.Column('platform_code', sa.String(length=64), nullable=False)]
    if table == "metric_sample":
        columns.append(sa.Column('series_id', sa.BigInteger(), autoincrement=False, nullable=False))
    else:
        columns += [
            sa.Column('room_code', sa.String(length=128), nullable=False),
            sa.Column('point_code', sa.String(length=128), nullable=False),
        ]
    columns += [
        sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
    ]
    if table == "environment_sample":
        columns += [
            sa.Column('state', sa.String(length=16), nullable=True),
            sa.Column('evaluated_at', sa.DateTime(timezone=True), nullable=True),
        ]
    columns.append(sa.Column('received_at', sa.DateTime(timezone=True), nullable=False))
    if with_seq:
        columns.append(sa.Column('change_seq', sa.BigInteger(), nullable=False))
    return columns


_SEQ_INDEX = {
    "metric_sample": ["platform_code", "change_seq", "series_id", "ts"],
    "environment_sample": ["platform_code", "change_seq", "room_code", "point_code", "ts"],
}
_PK = {
    "metric_sample": ["platform_code", "series_id", "ts"],
    "environment_sample": ["platform_code", "room_code", "point_code", "ts"],
}


def _rebuild_postgresql(table: str, *, partitioned: bool) -> None:
    """Copy ``table`` into a new (partitioned or plain) table of the same name, then drop the old."""
    old = f"{table}_old"
    op.execute(sa.text(f'ALTER TABLE {table} RENAME TO {old}'))
    op.execute(sa.text(f'ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}'))
    if not partitioned:
        op.execute(sa.text(f'DROP INDEX IF EXISTS ix_{table}_change'))
    options = {"postgresql_partition_by": "RANGE (ts)"} if partitioned else {}
    op.create_table(
        table,
        *_sample_columns(table, with_seq=partitioned),
        sa.PrimaryKeyConstraint(*_PK[table], name=f'pk_{table}'),
        **options,
    )
    names = [c.name for c in _sample_columns(table, with_seq=False)]
    column_list = ", ".join(names)
    if partitioned:
        op.create_index(f'ix_{table}_change', table, _SEQ_INDEX[table], unique=False)
        op.execute(sa.text(f'CREATE TABLE {table}_default PARTITION OF {table} DEFAULT'))
        op.execute(sa.text(f'INSERT INTO {table} ({column_list}, change_seq) SELECT {column_list}, 0 FROM {old}'))
        op.execute(sa.text(f'DROP TABLE {old}'))
        return
    op.execute(sa.text(f'INSERT INTO {table} ({column_list}) SELECT {column_list} FROM {old}'))
    op.execute(sa.text(f'DROP TABLE {old} CASCADE'))


def upgrade() -> None:
    for kind in ("metric", "environment"):
        for resolution in _RESOLUTIONS:
            _create_rollup(kind, resolution)
    op.create_table('rollup_state',
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('platform_code', sa.String(length=64), nullable=False),
    sa.Column('built_seq', sa.BigInteger(), nullable=False),
    sa.Column('day_tz', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'platform_code', name=op.f('pk_rollup_state'))
    )
    with op.batch_alter_table('change_counter', schema=None) as batch_op:
        batch_op.alter_column('name',
               existing_type=sa.VARCHAR(length=32),
               type_=sa.String(length=128),
               existing_nullable=False)

    if op.get_bind().dialect.name == "postgresql":
        for table in ("metric_sample", "environment_sample"):
            _rebuild_postgresql(table, partitioned=True)
        return
    for table in ("metric_sample", "environment_sample"):
        # rows stored before change sequences existed are all committed: they come first, at 0
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('change_seq', sa.BigInteger(), nullable=False, server_default="0"))
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('change_seq', server_default=None)
            batch_op.create_index(f'ix_{table}_change', _SEQ_INDEX[table], unique=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("metric_sample", "environment_sample"):
            # daily partitions are dropped with their parent once the rows are copied out
            _rebuild_postgresql(table, partitioned=False)
    else:
        for table in ("metric_sample", "environment_sample"):
            with op.batch_alter_table(table, schema=None) as batch_op:
                batch_op.drop_index(f'ix_{table}_change')
                batch_op.drop_column('change_seq')

    with op.batch_alter_table('change_counter', schema=None) as batch_op:
        batch_op.alter_column('name',
               existing_type=sa.String(length=128),
               type_=sa.VARCHAR(length=32),
               existing_nullable=False)

    op.drop_table('rollup_state')
    for kind in ("metric", "environment"):
        for resolution in _RESOLUTIONS:
            op.drop_table(f"{kind}_rollup_{resolution}")
