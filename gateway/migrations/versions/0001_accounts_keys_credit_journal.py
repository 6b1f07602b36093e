"""accounts, API keys and the append-only credit journal

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_keys_account_id", "api_keys", ["account_id"])
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("hold_id", sa.Integer(), sa.ForeignKey("credit_entries.id"), nullable=True),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount >= 0", name="ck_credit_entries_amount_non_negative"),
        sa.CheckConstraint("kind IN ('grant', 'hold', 'capture', 'release')", name="ck_credit_entries_kind"),
        sa.CheckConstraint(
            "(kind IN ('capture', 'release')) = (hold_id IS NOT NULL)", name="ck_credit_entries_settlement_has_hold"
        ),
    )
    op.create_index("ix_credit_entries_account_id", "credit_entries", ["account_id"])
    op.create_index("ix_credit_entries_hold_id", "credit_entries", ["hold_id"], unique=True)


def downgrade() -> None:
    op.drop_table("credit_entries")
    op.drop_table("api_keys")
    op.drop_table("accounts")
