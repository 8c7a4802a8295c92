"""segments of long videos, processed by several workers at once

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-11

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from veil.core.database.models import UTCDateTime

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "video_segments",
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("frames", sa.JSON(), nullable=False),
        sa.Column("input_key", sa.String(length=400), nullable=False),
        sa.Column("input_suffix", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("media_key", sa.String(length=400), nullable=True),
        sa.Column("report_key", sa.String(length=400), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"]),
        sa.PrimaryKeyConstraint("task_id", "index"),
    )
    with op.batch_alter_table("video_segments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_video_segments_status"), ["status"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("video_segments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_video_segments_status"))
    op.drop_table("video_segments")
