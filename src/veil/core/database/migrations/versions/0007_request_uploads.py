"""resumable uploads of a background request's input (a backup, annotations)

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-20

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose", sa.String(length=16), server_default="file", nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_column("purpose")
