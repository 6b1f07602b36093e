"""account balances kept beside the journal

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _journal_sum(kinds: str) -> str:
    return (
        f"(SELECT COALESCE(SUM(CASE WHEN kind IN ({kinds}) THEN amount ELSE 0 END), 0) FROM credit_entries"
        " WHERE credit_entries.account_id = accounts.id)"
    )


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.add_column(sa.Column("balance", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("held", sa.BigInteger(), nullable=False, server_default="0"))
    # balance = granted - captured; held = holds - captures - releases (what credits.get_balance summed before)
    granted, captured, holds, settled = (
        _journal_sum(kinds) for kinds in ("'grant'", "'capture'", "'hold'", "'capture', 'release'")
    )
    op.execute(f"UPDATE accounts SET balance = {granted} - {captured}, held = {holds} - {settled}")
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.create_check_constraint("ck_accounts_held_non_negative", "held >= 0")
        batch_op.create_check_constraint("ck_accounts_available_non_negative", "balance >= held")


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch_op:
        batch_op.drop_constraint("ck_accounts_available_non_negative", type_="check")
        batch_op.drop_constraint("ck_accounts_held_non_negative", type_="check")
        batch_op.drop_column("held")
        batch_op.drop_column("balance")
