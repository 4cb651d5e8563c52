"""the keyed audit chain: chain keys sealed under the server key, and where the keyed chain starts

The audit chain was plain SM3, which anyone who can write the database can recompute after editing
an event. From this revision on, events are chained with HMAC-SM3 under keys derived from the server
key (§9) and kept sealed in ``audit_chain_key``, each with the ``seq`` from which it applies. A
migration cannot seal keys (it does not hold the server key): the hub makes the first chain key when
it appends its next event. Events already chained stay verifiable as they are: ``audit_head.keyed_from``
records the first keyed ``seq`` (the head + 1 here; 1 on a new hub), and ``audit verify`` checks
the plain part before it and the keyed part from it.

Events also name their ``actor`` (§9: ``key:<app_key>``, ``user:<username>``, ``anonymous``), which
the keyed chain covers. The events already chained did not record it; it is filled in from what
they hold (a request with a role was authenticated by its ``app_key``; any other was anonymous),
the same rule by which ``audit verify`` checks it before ``keyed_from``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_chain_key",
        sa.Column("from_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("from_seq", name=op.f("pk_audit_chain_key")),
    )
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("keyed_from", sa.BigInteger(), server_default="1", nullable=False))
    # the chain so far stays plain SM3; the keyed chain starts after its head
    op.execute("UPDATE audit_head SET keyed_from = last_seq + 1")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=160), nullable=True))
    # app.security.audit.legacy_actor: what an event chained without its actor names
    op.execute(
        "UPDATE audit_event SET actor = CASE WHEN role IS NOT NULL AND app_key IS NOT NULL "
        "THEN 'key:' || app_key ELSE 'anonymous' END"
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_actor_seq", ["actor", "seq"], unique=False)


def downgrade() -> None:
    # keyed events cannot be verified as a plain chain after this: the head checkpoint and the keys
    # are what proves them, so a downgrade keeps the events but not the proof
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_actor_seq")
        batch_op.drop_column("actor")
    with op.batch_alter_table("audit_head", schema=None) as batch_op:
        batch_op.drop_column("keyed_from")
    op.drop_table("audit_chain_key")
