"""When a counted record suppresses its address: pure, the clock given.

Only rows the pipe counted (a verified token, and an address the message was sent to:
:data:`~bouncefilter.core.record.NAMED` kinds whose outcome is their kind) come here.
:func:`cause` says what a record is to the list:

- ``hard``: a bounce with ``hard`` set (userunknown, hostunknown, hasmoved, notaccept
  with a 5xx status). ``Rules.hard_after`` of them suppress until lifted.
- ``soft``: a bounce that is about the address but may pass (:data:`SOFT_REASONS`, and a
  hard reason with a 4xx status). Each adds 1 to a score that halves every
  ``Rules.half_life`` days; at ``Rules.threshold`` the address is suppressed for
  ``Rules.duration`` days, and the score starts again from nothing. With the defaults
  (half-life 7 days, threshold 2) three soft bounces each less than 4.8 days after the
  one before (1 + x + x² ≥ 2 for x = 0.5^(gap/7)), so three within a week, suppress;
  two never do (the first has lost weight by the time the second comes), and soft
  bounces a fortnight apart never add up to more than 4/3.
- ``complaint``: suppresses at once, until an administrator lifts it.
- ``None``: everything else. Policy and reputation refusals (blocked, spamdetected,
  policyviolation, badreputation, rejected, norelaying, authfailure, securityerror,
  ...) are about the sender, not the address; delays, auto-replies, challenges and
  successes say nothing about whether the address works; an undefined reason is not
  known to be about the address.
"""

from __future__ import annotations

from typing import NamedTuple

from bouncefilter.core.record import HARD_REASONS

#: Why an address is on the list: three causes from bounces, two from people.
HARD, SOFT, COMPLAINT, MANUAL, IMPORT = "hard", "soft", "complaint", "manual", "import"
REASONS = (HARD, SOFT, COMPLAINT, MANUAL, IMPORT)

#: Bounce reasons about the address itself that may clear up by themselves (sisimai's
#: names for RFC 3463's mailbox and system statuses: X.2.2 mailbox full, X.2.1 disabled
#: (suspend), X.2.3 over the mailbox's length limit (exceedlimit), X.4.7 delivery time
#: expired, X.3.1 system full, X.3.x system and X.4.x network trouble, a local mailer
#: that failed (mailererror)). The X.7.x security and policy statuses are not here.
SOFT_REASONS = frozenset({
    "mailboxfull", "suspend", "exceedlimit", "expired", "systemfull", "systemerror", "networkerror", "mailererror",
})
DAY = 86400.0


class Rules(NamedTuple):
    """One account's suppression rules (the configuration's ``suppression``), days as days."""

    hard_after: int = 1
    half_life: float = 7
    threshold: float = 2
    duration: float = 14


class Tally(NamedTuple):
    """What an address has gathered so far: hard bounces, and the soft score as it stood
    at ``scored_at`` (epoch seconds)."""

    hard: int = 0
    soft: float = 0.0
    scored_at: float = 0.0


class Verdict(NamedTuple):
    """The tally after one more record, and whether the address is now suppressed:
    ``reason`` (:data:`HARD`, :data:`SOFT` or :data:`COMPLAINT`, ``""`` for not) until
    ``until`` (epoch seconds; ``None`` for until lifted)."""

    tally: Tally
    reason: str = ""
    until: float | None = None


class Entry(NamedTuple):
    """One address to list by hand or by import: ``created_at`` ``None`` for the moment it
    is listed, ``until`` ``None`` for until lifted."""

    address: str
    reason: str = MANUAL
    detail: str = ""
    until: float | None = None
    created_at: float | None = None


def cause(kind: str, reason: str, hard: bool) -> str | None:
    """What a counted record of ``kind`` is to the list: :data:`HARD`, :data:`SOFT`,
    :data:`COMPLAINT` or ``None`` (it never suppresses)."""
    if kind == "complaint":
        return COMPLAINT
    if kind != "bounce":
        return None
    if hard:
        return HARD
    return SOFT if reason in SOFT_REASONS or reason in HARD_REASONS else None


def decayed(tally: Tally, now: float, half_life: float) -> float:
    """The soft score of ``tally`` at ``now``: halved for every ``half_life`` days since
    it was last scored (never grown by a clock that went back)."""
    elapsed = max(now - tally.scored_at, 0.0)
    return float(tally.soft * 0.5 ** (elapsed / (half_life * DAY)))


def judge(tally: Tally, why: str, now: float, rules: Rules) -> Verdict:
    """The tally after one more record that is ``why`` (a :func:`cause`) at ``now``, and
    whether the address is suppressed by it."""
    if why == COMPLAINT:
        return Verdict(tally, COMPLAINT)
    if why == HARD:
        counted = tally._replace(hard=tally.hard + 1)
        return Verdict(counted, HARD if counted.hard >= rules.hard_after else "")
    score = decayed(tally, now, rules.half_life) + 1
    if score >= rules.threshold - 1e-9:
        return Verdict(tally._replace(soft=0.0, scored_at=now), SOFT, now + rules.duration * DAY)
    return Verdict(tally._replace(soft=score, scored_at=now))
