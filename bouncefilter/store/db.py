"""The SQLite store: every read and write of bouncefilter's records goes through here.

One database file, opened in WAL mode with a busy timeout (the milter's threads and
several pipe processes write at once) and ``synchronous = FULL`` (a row committed
before the pipe tells Postfix "delivered" survives a power cut). The schema carries a
version (``PRAGMA user_version``) and moves forward by numbered migrations written in
plain SQL, so a PostgreSQL backend can later take the same statements; SQLite-only
statements (PRAGMA, ``BEGIN IMMEDIATE``) stay in this module.

Tables: ``messages`` (what the milter sent), ``bounces`` (one row per recipient event
the pipe received, whatever its outcome), ``raw_messages`` (each received message once,
zlib-compressed, kept ``retention.raw_days``) and ``outbox`` (what the forwarder must
still hand on; the pipe only inserts). A delivery is stored in one transaction: its raw
message, its rows and their outbox rows, or nothing. Duplicates are recognised by
:func:`dedup_key`. :func:`purge` applies the retention settings.

Everything uses the standard library's ``sqlite3`` and plain SQL: sqlite-utils, once a
dependency, costs 60 to 130 ms to import (measured 2026-12-03) with six packages of its
own, which the pipe would pay on every bounce, and a PostgreSQL backend will speak the
same SQL. People who like it can still query the file with it (README).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence

from bouncefilter.core.record import BounceRecord

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
    (
        2,
        """
        CREATE TABLE raw_messages (
            id          INTEGER PRIMARY KEY,
            sha256      TEXT NOT NULL UNIQUE,  -- message_digest(): without our own trace headers
            received_at REAL NOT NULL,
            size        INTEGER NOT NULL,      -- octets as received, before any truncation
            truncated   INTEGER NOT NULL DEFAULT 0,
            data        BLOB NOT NULL          -- zlib of the first pipe.max_bytes octets
        );
        CREATE INDEX raw_messages_received ON raw_messages (received_at);
        CREATE TABLE bounces (
            id                  INTEGER PRIMARY KEY,
            dedup_key           TEXT NOT NULL UNIQUE,
            received_at         REAL NOT NULL,    -- epoch seconds, UTC
            account             TEXT NOT NULL DEFAULT '',
            message_key         TEXT NOT NULL DEFAULT '',
            token               TEXT NOT NULL DEFAULT '',
            outcome             TEXT NOT NULL,
            kind                TEXT NOT NULL DEFAULT '',
            recipient           TEXT NOT NULL DEFAULT '',
            reason              TEXT NOT NULL DEFAULT '',
            hard                INTEGER NOT NULL DEFAULT 0,
            status              TEXT NOT NULL DEFAULT '',
            replycode           TEXT NOT NULL DEFAULT '',
            action              TEXT NOT NULL DEFAULT '',
            diagnostic          TEXT NOT NULL DEFAULT '',
            reporting_mta       TEXT NOT NULL DEFAULT '',
            remote_mta          TEXT NOT NULL DEFAULT '',
            original_recipient  TEXT NOT NULL DEFAULT '',
            feedback_type       TEXT NOT NULL DEFAULT '',
            arrival_date        TEXT NOT NULL DEFAULT '',
            source_ip           TEXT NOT NULL DEFAULT '',
            original_message_id TEXT NOT NULL DEFAULT '',
            subject             TEXT NOT NULL DEFAULT '',
            return_path         TEXT NOT NULL DEFAULT '',
            envelope_sender     TEXT NOT NULL DEFAULT '',  -- the bounced message's sender
            bounce_address      TEXT NOT NULL DEFAULT '',  -- the sent message's own bounce address
            parser              TEXT NOT NULL DEFAULT '',
            mail_from           TEXT NOT NULL DEFAULT '',  -- the bounce's envelope: pipe SENDER
            rcpt_to             TEXT NOT NULL DEFAULT '',  -- and pipe RECIPIENT
            queue_id            TEXT NOT NULL DEFAULT '',
            raw_id              INTEGER REFERENCES raw_messages (id)
        );
        CREATE INDEX bounces_account_received ON bounces (account, received_at);
        CREATE INDEX bounces_received ON bounces (received_at);
        CREATE INDEX bounces_recipient ON bounces (recipient);
        CREATE INDEX bounces_message ON bounces (message_key);
        CREATE TABLE outbox (
            id         INTEGER PRIMARY KEY,
            bounce_id  INTEGER NOT NULL REFERENCES bounces (id),
            target     TEXT NOT NULL,
            state      TEXT NOT NULL DEFAULT 'pending',
            due_at     REAL NOT NULL,
            attempts   INTEGER NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            UNIQUE (bounce_id, target)
        );
        CREATE INDEX outbox_due ON outbox (state, due_at);
        """,
    ),
    (
        3,
        """
        CREATE TABLE api_tokens (
            id         INTEGER PRIMARY KEY,
            key_id     TEXT NOT NULL UNIQUE,  -- the token's public part: looked up, listed, revoked
            sha256     TEXT NOT NULL,         -- of the whole token (the token itself is never stored)
            account    TEXT,                  -- NULL: an admin token, which sees every account
            note       TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            revoked_at REAL
        );
        CREATE INDEX bounces_account_outcome_received ON bounces (account, outcome, received_at);
        """,
    ),
    (
        4,
        """
        ALTER TABLE outbox ADD COLUMN claim TEXT NOT NULL DEFAULT '';  -- the forwarder sending it
        ALTER TABLE outbox ADD COLUMN queued_at REAL NOT NULL DEFAULT 0;  -- forward.max_age counts from here
        ALTER TABLE outbox ADD COLUMN done_at REAL;
        UPDATE outbox SET queued_at = due_at;
        """,
    ),
    (
        5,
        """
        -- The message was longer than pipe.max_bytes: the rows read from it may miss recipients.
        ALTER TABLE bounces ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
        """,
    ),
    (
        6,
        """
        CREATE TABLE suppressions (
            id          INTEGER PRIMARY KEY,
            account     TEXT NOT NULL,
            address     TEXT NOT NULL,     -- the domain lower-cased, the local part as the message had it
            address_key TEXT NOT NULL,     -- lower(address): how the milter and the pipe compare it
            reason      TEXT NOT NULL DEFAULT '',  -- hard, soft, complaint, manual, import ('' never listed)
            detail      TEXT NOT NULL DEFAULT '',  -- the bounce's reason (userunknown), or a note
            created_at  REAL,              -- when it was listed (last), epoch seconds
            until       REAL,              -- when it lapses by itself, NULL for until lifted
            bounce_ids  TEXT NOT NULL DEFAULT '[]',  -- JSON: the counted records that listed it
            lifted_at   REAL,
            lifted_by   TEXT NOT NULL DEFAULT '',
            hard_count  INTEGER NOT NULL DEFAULT 0,  -- the tally: hard bounces counted
            soft_score  REAL NOT NULL DEFAULT 0,     -- and the soft score as it stood at scored_at
            scored_at   REAL NOT NULL DEFAULT 0,
            UNIQUE (account, address_key)
        );
        CREATE INDEX suppressions_listed ON suppressions (account, reason, created_at);
        CREATE TABLE suppression_history (
            id          INTEGER PRIMARY KEY,
            account     TEXT NOT NULL,
            address     TEXT NOT NULL,
            address_key TEXT NOT NULL,
            at          REAL NOT NULL,
            change      TEXT NOT NULL,     -- counted, created, lifted
            reason      TEXT NOT NULL DEFAULT '',
            detail      TEXT NOT NULL DEFAULT '',
            until       REAL,
            bounce_id   INTEGER,           -- the record counted, or that listed it
            actor       TEXT NOT NULL DEFAULT ''   -- pipe, cli:USER, api:KEY_ID
        );
        CREATE INDEX suppression_history_address ON suppression_history (account, address_key, id);
        CREATE TABLE outbox_new (
            id         INTEGER PRIMARY KEY,
            bounce_id  INTEGER REFERENCES bounces (id),              -- a bounce event
            history_id INTEGER REFERENCES suppression_history (id),  -- or a suppression event
            target     TEXT NOT NULL,
            state      TEXT NOT NULL DEFAULT 'pending',
            due_at     REAL NOT NULL,
            attempts   INTEGER NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            claim      TEXT NOT NULL DEFAULT '',
            queued_at  REAL NOT NULL DEFAULT 0,
            done_at    REAL,
            UNIQUE (bounce_id, target),
            UNIQUE (history_id, target),
            CHECK ((bounce_id IS NULL) != (history_id IS NULL))
        );
        INSERT INTO outbox_new (id, bounce_id, target, state, due_at, attempts, last_error, claim, queued_at, done_at)
            SELECT id, bounce_id, target, state, due_at, attempts, last_error, claim, queued_at, done_at FROM outbox;
        DROP TABLE outbox;
        ALTER TABLE outbox_new RENAME TO outbox;
        CREATE INDEX outbox_due ON outbox (state, due_at);
        """,
    ),
)


SCHEMA_VERSION = MIGRATIONS[-1][0]

#: The columns of a stored bounce row as the readers return them, in order: the record's
#: fields, what the pipe decided about it, and how it arrived.
BOUNCE_COLUMNS = ("id", "received_at", *BounceRecord._fields, "outcome", "account", "message_key", "bounce_address",
                  "queue_id", "mail_from", "rcpt_to", "raw_id", "truncated")

#: The columns that hold 0 or 1, read back as booleans.
BOOLEAN_COLUMNS = ("hard", "truncated")


class StoreError(Exception):
    """The database cannot be used as it is (newer schema, not migrated, unreadable)."""


#: An open database, as the other modules hold it: they never run SQL on it themselves.
Connection = sqlite3.Connection


#: What a database that is locked, full or broken raises: callers that must answer for it
#: (the pipe's 75, the CLI's 1) catch this, not sqlite3's names.
DatabaseError = sqlite3.Error


#: What a write raises when it would repeat a unique key (:func:`add_token`).
DuplicateKey = sqlite3.IntegrityError


#: The database is there but cannot serve now (locked past the busy timeout, disk full).
Unavailable = sqlite3.OperationalError


def abandon(conn: sqlite3.Connection) -> None:
    """Roll back the transaction ``conn`` is in, if any (after a failure inside one)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def answers(conn: sqlite3.Connection) -> None:
    """Read the store once, raising :data:`DatabaseError` if it cannot (a health check)."""
    conn.execute("SELECT count(*) FROM api_tokens").fetchone()


def connect(path: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS, durable: bool = True,
            empty_ok: bool = False) -> sqlite3.Connection:
    """Open the database with the settings every writer needs.

    A file that exists but holds nothing (zero bytes: truncated, or wiped by a full disk
    or a careless copy) is refused with :class:`StoreError` unless ``empty_ok`` (``bouncefilter
    db migrate``): SQLite would take it for a new database, and every writer would then
    carry on into a fresh, empty store as if nothing had been lost. A file that does not
    exist yet is created.

    Autocommit mode (``isolation_level=None``): callers open transactions explicitly,
    so no statement holds a lock longer than it must. A writer that finds the database
    locked waits up to ``busy_timeout_ms``, then gets ``sqlite3.OperationalError``.
    ``durable``: every commit waits for the disk (``synchronous = FULL``), so that what
    was acknowledged survives a power cut; otherwise (``NORMAL``) the last commits may
    be lost in a power cut or an OS crash, never in a crash of the process, and the
    database stays consistent.
    """
    if not empty_ok and _empty_file(path):
        raise StoreError(f"{path} is an empty file, not a database: restore it from a backup, or remove it "
                         "(or run 'bouncefilter db migrate') to start a new one")
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    return conn


def _empty_file(path: str) -> bool:
    try:
        return os.stat(path).st_size == 0 and os.path.isfile(path)
    except OSError:
        return False


def skip_fsync(conn: sqlite3.Connection) -> None:
    """Let ``conn``'s commits skip the fsync (``synchronous = NORMAL`` in WAL mode): a
    killed process still keeps every commit, only a power cut may lose the last ones.
    For the forwarder, whose lost "done" marks only mean a row is sent again."""
    conn.execute("PRAGMA synchronous = NORMAL")


class Writing:
    """``with Writing(conn):`` a write transaction, taken at once (``BEGIN IMMEDIATE``:
    the busy timeout applies at the start, never half-way), committed at the end, and
    rolled back if anything in it raises, the COMMIT itself included."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            try:
                self._conn.execute("COMMIT")
                return
            except BaseException:
                abandon(self._conn)  # a failed COMMIT may have ended it already
                raise
        abandon(self._conn)


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
        with Writing(conn):
            if version(conn) < target:  # another process may have migrated meanwhile
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
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


def _statements(sql: str) -> Sequence[str]:
    return [statement.strip() for statement in sql.split(";") if statement.strip()]
