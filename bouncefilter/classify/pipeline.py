"""The classifier pipeline: an explicit, ordered list of parsers, first answer wins.

Standard reports come first (ARF, then RFC 3464 DSNs), then one module per MTA that
writes its bounces as plain text, then RFC 3834 auto-replies, then a cautious
heuristic for bounces of unknown make. Each parser returns ``None`` ("not mine") or
findings; this module completes the findings into records, deciding reason and
``hard`` through :mod:`bouncefilter.classify.reasons` alone. A message no parser claims is
``unknown``: no records, never a guessed bounce.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from bouncefilter.classify import arf, challenge, dsn, mime, original, reasons, status
from bouncefilter.classify.dsntext import Notice
from bouncefilter.classify.view import View
from bouncefilter.core.address import clean_address
from bouncefilter.core.record import BounceRecord, Classification, Finding, Original

if TYPE_CHECKING:
    import logging


def _log() -> logging.Logger:
    """This module's logger. ``logging`` is imported only to report a bug: it costs
    as much as classifying a message, in a process that classifies one."""
    import logging

    return logging.getLogger(__name__)


Parser = Callable[[View], "list[Finding] | None"]

#: The standard reports, tried first; a challenge request dressed as a DSN is no failure.
STANDARD: tuple[tuple[str, Parser], ...] = (
    ("arf", arf.parse),
    ("challenge", challenge.parse),
    ("dsn", dsn.parse),
)


@cache
def fallbacks() -> tuple[tuple[str, Parser], ...]:
    """The parsers tried when no standard report claims a message: the plain-text
    formats, auto-replies, the heuristic. Each is imported on first need: a process
    that classifies one DSN (the pipe transport) pays for none of them, one whose
    message a format claims not for the last two."""
    from bouncefilter.classify import mta

    return (*mta.PARSERS, ("autoreply", _autoreply), ("heuristic", _heuristic))


def _autoreply(view: View) -> list[Finding] | None:
    from bouncefilter.classify import autoreply

    return autoreply.parse(view)


def _heuristic(view: View) -> list[Finding] | None:
    from bouncefilter.classify import heuristic

    return heuristic.parse(view)


_OUTCOME_BY_KIND = {"complaint": "complaint", "autoreply": "autoreply", "challenge": "challenge"}


def classify(raw: bytes) -> Classification:
    """Classify one message given as bytes. Never raises on any input."""
    view = View(mime.parse(raw))
    found = _first_claim(view, STANDARD) or _first_claim(view, fallbacks())
    if found:
        try:
            return _classification(view, *found)
        except Exception:  # a bug in completing records must not make the pipe fail
            _log().exception("could not complete the findings of parser %s", found[0])
    return Classification("unknown", (), _original(view))


def _first_claim(view: View, candidates: tuple[tuple[str, Parser], ...]) -> tuple[str, list[Finding]] | None:
    """The first parser among ``candidates`` that claims ``view``, with its findings."""
    for name, parser in candidates:
        try:
            findings = parser(view)
        except Exception:  # a parser bug must not lose the message: log it, try the next
            _log().exception("parser %s failed; trying the next one", name)
            continue
        if findings:
            return name, findings
    return None


def _classification(view: View, parser: str, findings: list[Finding]) -> Classification:
    identity = _original(view)
    notice = Notice(lambda: view.text)
    for finding in findings:
        if finding.kind in ("bounce", "delay") and "command" not in finding.extra:
            # The notice often names the SMTP step a format parser did not read
            # (``>>> RCPT To:``, ``in reply to RCPT TO command``); reasons weigh it.
            finding.extra["command"] = notice.command(finding.recipient)
    records = tuple(complete(finding, identity, parser) for finding in findings)
    outcome = _OUTCOME_BY_KIND.get(records[0].kind, "bounce")
    return Classification(outcome, records, identity, parser)


def _original(view: View) -> Original:
    try:
        return original.find(view)
    except Exception:  # identity is a bonus; a broken returned part must not cost the record
        _log().exception("could not read the returned original")
        return Original()


def complete(finding: Finding, identity: Original, parser: str) -> BounceRecord:
    """A finding plus the original's identity, with status, reason and ``hard`` decided.

    A finding that gave up after its retries and states no status detail gets RFC 3463's
    ``X.4.7`` (delivery time expired) in the class its parser gave (``4`` where the MTA
    still calls the condition temporary, as Exim and Sendmail do, else ``5``).
    """
    code = finding.status or status.find_status(finding.diagnostic)
    if finding.expired and code in ("", "4.0.0", "5.0.0"):
        code = f"{code[:1] or '5'}.4.7"
    replycode = finding.replycode or status.find_replycode(finding.diagnostic)
    if finding.kind in ("complaint", "autoreply", "challenge"):
        code = replycode = ""
    command = finding.extra.get("command", "")
    reason = reasons.decide(finding.kind, code, finding.diagnostic, finding.code, command, finding.expired)
    recipient = finding.recipient or (identity.to and clean_address(identity.to)) or ""
    return BounceRecord(
        recipient=recipient,
        kind=finding.kind,
        reason=reason,
        hard=reasons.is_hard(reason, code),
        status=code,
        replycode=replycode,
        action=finding.action,
        diagnostic=finding.diagnostic,
        reporting_mta=finding.reporting_mta,
        remote_mta=finding.remote_mta,
        original_recipient=finding.original_recipient,
        feedback_type=finding.feedback_type,
        arrival_date=finding.arrival_date,
        source_ip=finding.source_ip,
        original_message_id=identity.message_id,
        subject=identity.subject,
        token=identity.token,
        return_path=identity.return_path,
        envelope_sender=finding.extra.get("sender", "") or identity.return_path,
        parser=parser,
    )
