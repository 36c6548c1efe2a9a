"""The pipe transport (``bouncefilter pipe``): one received message in, stored, 0 or 75 out.

Postfix's pipe(8) (or a Sendmail prog mailer) starts one process per message for the
bounce domain, with the message on standard input::

    bouncefilter pipe [--config PATH] [--queue-id ID] [--null-sender NAME] SENDER RECIPIENT

The message is read (up to ``pipe.max_bytes``; a larger one is stored truncated and
marked so), classified, tied to the message it answers by its VERP token, and stored
with :func:`bouncefilter.store.store_delivery`: one row per recipient event, the raw
message once, outbox rows for forwarding, all in one transaction. Every message is
stored, whatever it is; the ``outcome`` column says what it was:

- the record's kind (``bounce``, ``delay``, ``delivered``, ``complaint``, ``autoreply``,
  ``challenge``) when a valid token ties it to a sent message (for the kinds that name a
  recipient, one the message was sent to);
- ``stranger``: a valid token, but about an address the message was not sent to
  (:func:`~bouncefilter.pipe.correlation.outcome`);
- ``reply``: a valid token, but no parser claims the message (a person answering);
- ``forged`` / ``expired``: the token's MAC is wrong (or it is no token at all), or it
  is older than ``verp.max_age_days``; kept, never counted against a recipient;
- ``notoken``: a bounce, complaint or auto-reply that names no token anywhere;
- ``unknown``: neither a token nor anything a parser claims (mail to a bare address),
  or a message the classifier failed on (``parser`` is then ``error``).

The token is looked for in the envelope recipient first (when it carries one, it
decides), then in the returned original (the tracking header, its Return-Path, the
report's X-Postfix-Sender), then in the DSN's Original-Envelope-Id.

The exit status is 0 (stored, or a duplicate of what is stored) or 75 (EX_TEMPFAIL,
Postfix tries again later) with one line ``4.3.0 ...`` on standard output: anything of
ours that fails (configuration, database locked or full, a bug) is 75, because any
other status makes Postfix bounce the bounce. :func:`main` is the one place that
decides it. Log lines (one per stored row, in Postfix's ``QUEUEID: name=value, ...``
style) are held until the end and then written to syslog (standard error without
``/dev/log``, or with ``logging.target: stderr``), after the 4.3.0 line.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from bouncefilter import config, logs, store
from bouncefilter.classify import pipeline
from bouncefilter.core import verp
from bouncefilter.core.record import KINDS, NEVER_FORWARDED, BounceRecord, Classification, Original, Outcome, SentMessage
from bouncefilter.pipe import correlation

if TYPE_CHECKING:
    from datetime import date
    from typing import BinaryIO, TextIO

    from bouncefilter.config import Settings
    from bouncefilter.pipe.command import Arguments

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_TEMPFAIL = 75
#: How long to wait for the milter to record a message whose bounce arrived first (it
#: commits in batches; a hard bounce from a nearby MTA can beat it by milliseconds).
MESSAGE_WAIT_SECONDS = 2.0
MESSAGE_WAIT_STEP = 0.05
IDENT = "bouncefilter/pipe"


def main(args: Arguments, stdin: BinaryIO | None = None, stdout: TextIO | None = None) -> int:
    """Run the pipe transport for the command line ``args`` (:func:`command.parse`);
    returns 0 or 75 and never raises.

    On 75, one line starting ``4.3.0 `` is written to ``stdout``; nothing else ever is.
    """
    stdout = stdout or sys.stdout
    held = logs.hold()
    settings: Settings | None = None
    queue_id = args.queue_id or "NOQUEUE"
    real_stdout, sys.stdout = sys.stdout, io.StringIO()  # a stray print must not reach Postfix
    try:
        if args.problem:
            raise Temporary(args.problem)
        settings = load_settings(args.config)
        raw, size, truncated = read_message(stdin or sys.stdin.buffer, settings.pipe.max_bytes)
        deliver(settings, args, raw, size, truncated)
        code, reply = EXIT_OK, ""
    except BaseException as exc:  # the one top-level handler: whatever happens, 75
        code, reply = EXIT_TEMPFAIL, _reply(exc)
        if isinstance(exc, Temporary):
            log.error("%s: deferred: %s", queue_id, exc)
        else:
            log.error("%s: deferred after an unexpected failure", queue_id, exc_info=True)
    finally:
        sys.stdout = real_stdout
    if reply:
        try:
            stdout.write(reply + "\n")
            stdout.flush()
        except (OSError, ValueError):
            pass  # Postfix went away; the exit status still says "try again"
    logs.release(held, settings.logging if settings else None, IDENT)
    return code


class Temporary(Exception):
    """A failure of ours that Postfix should retry: the message becomes 4.3.0 text."""


def load_settings(path: str | None) -> Settings:
    """The settings; a :class:`Temporary` naming the problem if they cannot be loaded."""
    try:
        return config.load(config.locate(path))
    except config.ConfigError as exc:
        raise Temporary(f"configuration: {exc}") from None


def read_message(stream: BinaryIO, max_bytes: int) -> tuple[bytes, int, bool]:
    """The message on ``stream``: its first ``max_bytes`` octets, its full size, and
    whether it was cut. The rest is read and dropped, so the writer never fails."""
    data = stream.read(max_bytes + 1) or b""
    if len(data) <= max_bytes:
        return data, len(data), False
    size = len(data)
    while chunk := stream.read(1 << 20):
        size += len(chunk)
    return data[:max_bytes], size, True


def deliver(settings: Settings, args: Arguments, raw: bytes, size: int, truncated: bool,
            now: float | None = None) -> list[tuple[store.Bounce, int | None]]:
    """Classify and store one received message; each row with its new id (``None``:
    stored before). Raises :class:`Temporary` when the keys or the database fail."""
    try:
        keys = config.signing_keys(settings.verp)
    except config.ConfigError as exc:
        raise Temporary(f"configuration: {exc}") from None
    now = time.time() if now is None else now
    today = datetime.fromtimestamp(now, timezone.utc).date()
    classification = _classified(raw, args.queue_id)
    verdict = correlation.verdict(args.recipient, classification, raw, settings.verp.prefix, settings.verp.domain or "",
                                  keys, today, settings.verp.max_age_days)
    try:
        conn = store.connect(settings.database, settings.database_busy_timeout_ms)
    except (store.DatabaseError, store.StoreError, OSError) as exc:
        raise Temporary(f"database {settings.database}: {exc}") from None
    try:
        try:
            store.ensure_schema(conn, settings.database_auto_migrate)
        except store.StoreError as exc:
            raise Temporary(f"database {settings.database}: {exc}") from None
        message = _sent_message(conn, verdict, today) if verdict and verdict.message_key else None
        rows = bounce_rows(classification, verdict, message, settings)
        keep = settings.pipe.keep_unverified
        verified = verdict is not None and verdict.status != verp.FORGED
        if verified and message is not None:
            rows, verified = _capped(conn, rows, message, settings.pipe.max_records_per_message, args.queue_id)
        if not verified and keep == "drop":
            log.info("%s: dropped: %s (pipe.keep_unverified: drop)", args.queue_id or "NOQUEUE",
                     verdict.status if verdict else "no token")
            return []
        delivery = store.Delivery(raw, now, size, truncated, args.queue_id, args.sender, args.recipient)
        ids = store.store_delivery(conn, delivery, rows, keep_raw=verified or keep == "raw",
                                   suppressing=suppressing(settings, message.account if message else ""))
    except store.DatabaseError as exc:
        raise Temporary(f"database {settings.database}: {exc}") from None
    finally:
        conn.close()
    results = list(zip(rows, ids))
    for row, row_id in results:
        log.info("%s", log_line(args.queue_id, row, row_id, truncated))
    return results


def suppressing(settings: Settings, account: str) -> dict[str, store.suppressions.Setting]:
    """What counting towards ``account``'s suppression list needs: its rules and the
    targets of its suppression events (empty for no account)."""
    found = settings.account(account) if account else None
    if found is None:
        return {}
    return {account: store.suppressions.Setting(found.suppression.rules(), settings.suppression_targets(found.name))}


def _capped(conn: store.Connection, rows: list[store.Bounce], message: SentMessage, cap: int,
            queue_id: str) -> tuple[list[store.Bounce], bool]:
    """``rows`` within the message's room (``cap`` rows, at least four per recipient,
    less those stored before), the excess made one unclassified, unforwarded row; and
    whether the delivery still counts as verified (not when it had no room left at all,
    so that one token cannot fill the disk either)."""
    limit = max(cap, 4 * len(message.recipients))
    room = limit - store.message_rows(conn, message.message_key)
    if len(rows) <= room:
        return rows, True
    kept = rows[:max(room, 0)]
    first = rows[0]
    log.warning("%s: token %s: %d rows over the limit of %d for one sent message, stored as one unclassified row",
                queue_id or "NOQUEUE", first.record.token, len(rows) - len(kept), limit)
    excess = BounceRecord(recipient="", kind="", reason="", hard=False, parser="capped", token=first.record.token,
                          original_message_id=message.message_id, subject=message.subject)
    return [*kept, first._replace(record=excess, outcome=Outcome.UNKNOWN, targets=())], room > 0


def _classified(raw: bytes, queue_id: str) -> Classification:
    """The classifier's verdict; should the classifier ever fail on a message (it must
    not), the message is stored unclassified with parser ``error`` rather than deferred
    day after day until Postfix gives up on it."""
    try:
        return pipeline.classify(raw)
    except Exception:
        log.exception("%s: the classifier failed; storing the message unclassified", queue_id or "NOQUEUE")
        return Classification(Outcome.UNKNOWN, (), Original(), parser="error")


def _sent_message(conn: store.Connection, verdict: verp.Verdict, today: date) -> SentMessage | None:
    """The sent message the token names. For a token issued today or yesterday, waits a
    moment for a row the milter has not committed yet."""
    recent = verdict.issued is not None and (today - verdict.issued).days <= 1
    deadline = time.monotonic() + (MESSAGE_WAIT_SECONDS if recent and verdict.valid else 0)
    while True:
        message = store.sent_message(conn, verdict.message_key)
        if message is not None or time.monotonic() >= deadline:
            return message
        time.sleep(MESSAGE_WAIT_STEP)


def bounce_rows(classification: Classification, verdict: verp.Verdict | None,
                message: SentMessage | None, settings: Settings | None = None) -> list[store.Bounce]:
    """The rows to store for a classified message: one per record, or one for the whole
    message when it has none; with ``settings``, each with its forwarding targets."""
    records = classification.records or (
        BounceRecord(recipient="", kind="", reason="", hard=False, parser=classification.parser,
                     original_message_id=classification.original.message_id,
                     subject=classification.original.subject, token=classification.original.token),
    )
    sent_to = correlation.addressees(message.recipients) if message is not None else None
    return [_row(record, verdict, message, sent_to, settings) for record in records]


def _row(record: BounceRecord, verdict: verp.Verdict | None, message: SentMessage | None,
         sent_to: frozenset[str] | None, settings: Settings | None) -> store.Bounce:
    recipient = record.recipient
    valid = verdict is not None and verdict.valid
    if not recipient and message is not None and len(message.recipients) == 1 and valid and record.kind in KINDS:
        recipient = message.recipients[0]  # a redacted complaint about a one-recipient message
    outcome = correlation.outcome(record.kind, record.parser, verdict.status if verdict else "", recipient,
                                  record.original_recipient, sent_to)
    token = (verdict.token if verdict else "") or record.token
    if message is not None:  # what the bounce did not return, the sent message's row knows
        record = record._replace(original_message_id=record.original_message_id or message.message_id,
                         subject=record.subject or message.subject)
    return store.Bounce(
        record=record._replace(recipient=recipient, token=token),
        outcome=outcome,
        account=message.account if message else "",
        message_key=verdict.message_key if verdict else "",
        bounce_address=(message.bounce_address or message.sender) if message else "",
        targets=forward_targets(settings, message.account if message else "", outcome),
    )


def forward_targets(settings: Settings | None, account: str, outcome: str) -> tuple[str, ...]:
    """The outbox targets for a new row: those of its account that want its kind. A
    row's kind is its outcome (``bounce``, ``reply``, ``unknown`` ...); forged, expired,
    notoken and stranger rows never reach a target (:data:`NEVER_FORWARDED`)."""
    if settings is None or outcome in NEVER_FORWARDED:
        return ()
    return settings.forward_targets(account, outcome)


def log_line(queue_id: str, row: store.Bounce, row_id: int | None, truncated: bool = False) -> str:
    """``QUEUEID: recipient=<...>, outcome=..., reason=..., hard=..., status=..., ...``."""
    record = row.record
    parts = [
        f"recipient=<{record.recipient}>",
        f"outcome={row.outcome}",
        f"reason={record.reason or '-'}",
        f"hard={'yes' if record.hard else 'no'}",
        f"status={record.status or '-'}",
        f"account={row.account or '-'}",
    ]
    if record.token:
        parts.append(f"token={record.token}")
    parts.append(f"id={row_id}" if row_id is not None else "duplicate")
    if truncated:
        parts.append("truncated")
    return f"{queue_id or 'NOQUEUE'}: " + ", ".join(parts)


def _reply(exc: BaseException) -> str:
    """The one ``4.3.0`` line for a failure: what went wrong, on one line."""
    if isinstance(exc, Temporary):
        text = str(exc)
    else:
        text = f"internal error ({type(exc).__name__})"
    text = " ".join(text.split())[:300]
    return f"4.3.0 bouncefilter: {text}; try again later"
