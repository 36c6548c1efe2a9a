"""The SQLite store: every read and write of bouncefilter's records goes through here.

One database file, opened in WAL mode with a busy timeout (the milter's threads and
several pipe processes write at once) and ``synchronous = FULL`` (a row committed
before the pipe tells Postfix "delivered" survives a power cut). The schema carries a
version (``PRAGMA user_version``) and moves forward by numbered migrations written in
plain SQL, so a PostgreSQL backend can later take the same statements.

The hot paths (the milter recording a sent message, the pipe storing a bounce) use the
standard library's ``sqlite3`` only: importing sqlite-utils alone costs about 90 ms,
which the pipe would pay on every bounce.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000

#: Forward migrations: (version reached, SQL). Never edit a released one; append.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE IF NOT EXISTS messages (
            message_key    TEXT PRIMARY KEY,   -- the VERP token's random message key (hex)
            token          TEXT NOT NULL,
            account        TEXT NOT NULL,
            queue_id       TEXT NOT NULL DEFAULT '',
            message_id     TEXT NOT NULL DEFAULT '',
            subject        TEXT NOT NULL DEFAULT '',
            sender         TEXT NOT NULL DEFAULT '',   -- the original envelope sender
            bounce_address TEXT NOT NULL DEFAULT '',   -- from a submitted Return-Path header
            recipients     TEXT NOT NULL DEFAULT '[]', -- JSON array
            sent_at        REAL NOT NULL               -- epoch seconds, UTC
        );
        CREATE INDEX IF NOT EXISTS messages_account_sent ON messages (account, sent_at);
        CREATE INDEX IF NOT EXISTS messages_sent ON messages (sent_at);
        """,
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


class StoreError(Exception):
    """The database cannot be used as it is (newer schema, not migrated, unreadable)."""


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One outbound message as the milter records it."""

    message_key: str
    token: str
    account: str
    sent_at: float
    queue_id: str = ""
    message_id: str = ""
    subject: str = ""
    sender: str = ""
    bounce_address: str = ""
    recipients: tuple[str, ...] = ()


def connect(path: str) -> sqlite3.Connection:
    """Open the database with the settings every writer needs.

    Autocommit mode (``isolation_level=None``): callers open transactions explicitly
    with :func:`transaction`, so no statement holds a lock longer than it must.
    """
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def version(conn: sqlite3.Connection) -> int:
    """The schema version the database is at (0 for a new, empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration the database lacks; returns the version reached.

    Raises :class:`StoreError` for a database newer than this program.
    """
    current = version(conn)
    if current > SCHEMA_VERSION:
        raise StoreError(f"database schema {current} is newer than this bouncefilter ({SCHEMA_VERSION}); upgrade bouncefilter")
    for target, sql in MIGRATIONS:
        if target <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version(conn) < target:  # another process may have migrated meanwhile
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("database migrated to schema %d", target)
    return version(conn)


def ensure_schema(conn: sqlite3.Connection, auto_migrate: bool) -> None:
    """Refuse a database newer than this program; migrate an older one only if allowed."""
    current = version(conn)
    if current == SCHEMA_VERSION:
        return
    if current > SCHEMA_VERSION or not auto_migrate:
        if current > SCHEMA_VERSION:
            raise StoreError(f"database schema {current} is newer than this bouncefilter ({SCHEMA_VERSION})")
        raise StoreError(f"database schema {current} is older than {SCHEMA_VERSION}: run 'bouncefilter db migrate'")
    migrate(conn)


def record_message(conn: sqlite3.Connection, message: SentMessage) -> None:
    """Store one sent message; recording the same message key again changes nothing."""
    conn.execute(
        "INSERT OR IGNORE INTO messages (message_key, token, account, queue_id, message_id, subject,"
        " sender, bounce_address, recipients, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message.message_key,
            message.token,
            message.account,
            message.queue_id,
            message.message_id,
            message.subject,
            message.sender,
            message.bounce_address,
            json.dumps(list(message.recipients)),
            message.sent_at,
        ),
    )


def sent_message(conn: sqlite3.Connection, message_key: str) -> SentMessage | None:
    """The recorded message with this key, or ``None``."""
    row = conn.execute(
        "SELECT message_key, token, account, sent_at, queue_id, message_id, subject, sender,"
        " bounce_address, recipients FROM messages WHERE message_key = ?",
        (message_key,),
    ).fetchone()
    if row is None:
        return None
    *fields, recipients = row
    return SentMessage(*fields, recipients=tuple(json.loads(recipients)))


def _statements(sql: str) -> Sequence[str]:
    return [statement.strip() for statement in sql.split(";") if statement.strip()]
