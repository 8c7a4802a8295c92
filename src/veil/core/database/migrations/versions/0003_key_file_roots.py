"""a file root per key, and the root of each expiring path

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("file_root", sa.String(length=4096), nullable=True))
    with op.batch_alter_table("expiring_paths", schema=None) as batch_op:
        batch_op.add_column(sa.Column("root", sa.String(length=4096), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("expiring_paths", schema=None) as batch_op:
        batch_op.drop_column("root")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("file_root")
