"""The SQLite store: every read and write of bouncefilter's records goes through here, and
no other module runs SQL or opens a transaction.

:mod:`~bouncefilter.store.db` opens the file and migrates its schema;
:mod:`~bouncefilter.store.messages` keeps what the milter sent,
:mod:`~bouncefilter.store.deliveries` what the pipe received,
:mod:`~bouncefilter.store.outbox` what the forwarder must still hand on;
:mod:`~bouncefilter.store.reports` and :mod:`~bouncefilter.store.export` read for the report,
the overview page and the API; :mod:`~bouncefilter.store.tokens` keeps the API's tokens and
:mod:`~bouncefilter.store.retention` deletes what is old. The suppression list is
:mod:`~bouncefilter.store.suppressions`, handed on whole (``store.suppressions.lift``). This face hands their names on, so
that callers write ``store.connect``, ``store.store_delivery``.
"""

from bouncefilter.core.record import SentMessage
from bouncefilter.store import suppressions
from bouncefilter.store.db import (
                                   BOOLEAN_COLUMNS,
                                   BOUNCE_COLUMNS,
                                   BUSY_TIMEOUT_MS,
                                   MIGRATIONS,
                                   SCHEMA_VERSION,
                                   Connection,
                                   DatabaseError,
                                   DuplicateKey,
                                   StoreError,
                                   Unavailable,
                                   Writing,
                                   abandon,
                                   answers,
                                   connect,
                                   ensure_schema,
                                   migrate,
                                   skip_fsync,
                                   version,
)
from bouncefilter.store.deliveries import (
                                   TRACE_HEADERS,
                                   Bounce,
                                   Delivery,
                                   dedup_key,
                                   message_digest,
                                   message_rows,
                                   raw_message,
                                   store_delivery,
)
from bouncefilter.store.export import EXPORT_FIELDS, BounceQuery, bounce_source, bounces, export_json, export_record, export_rows, position
from bouncefilter.store.messages import MESSAGE_ROWS, record_messages, sent_message
from bouncefilter.store.outbox import (
                                   DEAD,
                                   DONE,
                                   PENDING,
                                   SENDING,
                                   OutboxItem,
                                   claim_due,
                                   dead_letters,
                                   extend_claim,
                                   mark_dead,
                                   mark_done,
                                   mark_retry,
                                   next_due,
                                   outbox_rows,
                                   retry_dead,
)
from bouncefilter.store.reports import daily_counts, latest, latest_hard_bounces, outcome_totals, sent_totals, top_values
from bouncefilter.store.retention import PURGE_BATCH, Purged, purge
from bouncefilter.store.tokens import ApiToken, add_token, api_token, api_tokens, revoke_token

__all__ = [
    "BOOLEAN_COLUMNS",
    "BOUNCE_COLUMNS", "BUSY_TIMEOUT_MS", "DEAD", "DONE", "EXPORT_FIELDS", "MESSAGE_ROWS", "MIGRATIONS", "PENDING", "PURGE_BATCH",
    "SCHEMA_VERSION", "SENDING", "TRACE_HEADERS", "ApiToken", "Bounce", "BounceQuery", "Connection", "DatabaseError",
    "Delivery", "DuplicateKey", "OutboxItem", "Purged", "SentMessage", "StoreError", "Unavailable", "Writing", "abandon",
    "add_token", "answers", "api_token", "api_tokens", "bounce_source", "bounces", "claim_due", "connect", "daily_counts",
    "dead_letters", "dedup_key", "ensure_schema", "export_json", "export_record", "export_rows", "extend_claim",
    "latest", "latest_hard_bounces", "mark_dead", "mark_done", "mark_retry", "message_digest", "message_rows", "migrate", "next_due",
    "outbox_rows", "outcome_totals", "position", "purge", "raw_message", "record_messages", "retry_dead", "revoke_token",
    "sent_message",
    "sent_totals", "skip_fsync", "store_delivery", "suppressions", "top_values", "version",
]
