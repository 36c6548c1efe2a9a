"""The API's tokens: only a hash of each is stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import NamedTuple


class ApiToken(NamedTuple):
    """A stored API token: its public ``key_id``, the SHA-256 (hex) of the whole token,
    its account (``None`` for an admin token) and when it was made and revoked."""

    key_id: str
    sha256: str
    account: str | None
    created_at: float
    revoked_at: float | None = None
    note: str = ""


def add_token(conn: sqlite3.Connection, token: ApiToken) -> None:
    """Store a new token; ``sqlite3.IntegrityError`` if its key id is taken."""
    conn.execute(
        "INSERT INTO api_tokens (key_id, sha256, account, note, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)",
        (token.key_id, token.sha256, token.account, token.note, token.created_at, token.revoked_at),
    )


def api_token(conn: sqlite3.Connection, key_id: str) -> ApiToken | None:
    """The token with this key id (revoked or not), or ``None``."""
    rows = _tokens(conn, " WHERE key_id = ?", (key_id,))
    return rows[0] if rows else None


def api_tokens(conn: sqlite3.Connection) -> list[ApiToken]:
    """Every stored token, oldest first."""
    return _tokens(conn, "", ())


def _tokens(conn: sqlite3.Connection, where: str, params: Sequence[object]) -> list[ApiToken]:
    """The tokens that ``where`` (a WHERE clause or nothing) selects, oldest first."""
    rows = conn.execute(
        f"SELECT key_id, sha256, account, created_at, revoked_at, note FROM api_tokens{where} ORDER BY id", params)
    return [ApiToken(*row) for row in rows]


def revoke_token(conn: sqlite3.Connection, key_id: str, at: float) -> bool:
    """Mark the token revoked at ``at``; ``False`` if there is no such token not yet revoked."""
    cursor = conn.execute(
        "UPDATE api_tokens SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (at, key_id))
    return cursor.rowcount == 1
