"""The sent messages the milter records: one row per message, looked up by its key when a bounce comes back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from bouncefilter.core.record import SentMessage

#: Rows in one INSERT of sent messages (10 values each: within SQLite's oldest limit of
#: 999 variables). One statement for many rows lets the milter's writer thread take
#: Python's interpreter lock once per statement, not once per row, from the thread that
#: answers the MTA.
MESSAGE_ROWS = 90


_INSERT_MESSAGES = (
    "INSERT OR IGNORE INTO messages (message_key, token, account, queue_id, message_id, subject,"
    " sender, bounce_address, recipients, sent_at) VALUES "
)


_MESSAGE_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def record_messages(conn: sqlite3.Connection, messages: Sequence[SentMessage]) -> None:
    """Store sent messages; a message key already stored (or earlier in ``messages``)
    keeps its first record."""
    for start in range(0, len(messages), MESSAGE_ROWS):
        chunk = messages[start:start + MESSAGE_ROWS]
        values = [value for message in chunk for value in _message_values(message)]
        conn.execute(_INSERT_MESSAGES + ", ".join([_MESSAGE_VALUES] * len(chunk)), values)


def _message_values(message: SentMessage) -> tuple[object, ...]:
    return (
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
    key, token, account, sent_at, queue_id, message_id, subject, sender, bounce_address, recipients = row
    return SentMessage(key, token, account, sent_at, queue_id, message_id, subject, sender, bounce_address,
                       tuple(json.loads(recipients)))
