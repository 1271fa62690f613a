"""consolidation: unit content hashes, unit facts, job progress marks

Revision ID: 0004_consolidation
Revises: 0003_video
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_consolidation"
down_revision = "0003_video"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_units_scope_hash", ["tenant_id", "user_id", "content_hash"], unique=False)

    op.create_table(
        "unit_facts",
        sa.Column("unit_id", sa.String(length=36), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("attribute", sa.String(length=128), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("value", sa.String(length=512), nullable=False),
        sa.Column("observed_at", sa.DateTime(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_unit_facts_unit_id_units"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("unit_id", "subject", "attribute", name=op.f("pk_unit_facts")),
    )
    with op.batch_alter_table("unit_facts", schema=None) as batch_op:
        batch_op.create_index("ix_unit_facts_key", ["tenant_id", "user_id", "subject", "attribute"], unique=False)

    op.create_table(
        "consolidation_state",
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("mark", sa.String(length=256), nullable=True),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", "job", name=op.f("pk_consolidation_state")),
    )


def downgrade() -> None:
    op.drop_table("consolidation_state")
    with op.batch_alter_table("unit_facts", schema=None) as batch_op:
        batch_op.drop_index("ix_unit_facts_key")
    op.drop_table("unit_facts")
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.drop_index("ix_units_scope_hash")
        batch_op.drop_column("content_hash")
