"""api keys say how they are hashed (sha256 before, hmac-sha256 under the server secret from now on)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows hold SHA-256(key): the server default marks them, and gateway.auth.rehash_legacy_keys wraps them
    # under the secret (run by `replate db upgrade` and at every gateway start).
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.add_column(sa.Column("hash_scheme", sa.String(16), nullable=False, server_default="sha256"))
        batch_op.create_check_constraint("ck_api_keys_hash_scheme", "hash_scheme IN ('sha256', 'hmac-sha256')")


def downgrade() -> None:
    # Only keys still in the legacy scheme would work again after a downgrade: re-create the others.
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.drop_constraint("ck_api_keys_hash_scheme", type_="check")
        batch_op.drop_column("hash_scheme")
