"""The numbers behind ``GET /v1/stats`` and the overview page, per account.

Read through the store's report helpers (:mod:`bouncefilter.store`), so the API, the
page and ``bouncefilter report`` count alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bouncefilter import store

#: How many reasons and recipient domains are listed, most frequent first.
TOP_REASONS = 20
TOP_DOMAINS = 10
LATEST = 10


@dataclass(frozen=True)
class AccountStats:
    """One account's numbers for one window."""

    account: str
    messages: int = 0
    recipients: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # rows per outcome
    hard: int = 0
    soft: int = 0
    days: dict[str, dict[str, int]] = field(default_factory=dict)  # YYYY-MM-DD -> outcome -> rows
    reasons: list[tuple[str, int]] = field(default_factory=list)
    domains: list[tuple[str, int]] = field(default_factory=list)
    latest_hard: list[dict[str, object]] = field(default_factory=list)
    latest_complaints: list[dict[str, object]] = field(default_factory=list)

    @property
    def bounced(self) -> int:
        """Bounced recipients, hard and soft."""
        return self.hard + self.soft

    @property
    def bounce_rate(self) -> float | None:
        """Bounced recipients per recipient sent (``None`` when nothing was sent)."""
        return self.bounced / self.recipients if self.recipients else None

    def to_json(self) -> dict[str, object]:
        """The stats as the API returns them."""
        return {
            "account": self.account,
            "sent": {"messages": self.messages, "recipients": self.recipients},
            "bounced": {"total": self.bounced, "hard": self.hard, "soft": self.soft},
            "bounce_rate": None if self.bounce_rate is None else round(self.bounce_rate, 6),
            "outcomes": self.outcomes,
            "days": [{"day": day, **counts} for day, counts in self.days.items()],
            "reasons": [{"reason": reason, "count": count} for reason, count in self.reasons],
            "domains": [{"domain": domain, "count": count} for domain, count in self.domains],
        }


def gather(conn: store.Connection, since: float, until: float, account: str | None,
           names: Sequence[str] = ()) -> list[AccountStats]:
    """The stats of ``account`` (``None``: of every account with data, ``names`` first
    even without any) for the window ``[since, until)``."""
    sent = store.sent_totals(conn, since, until, account)
    outcomes: dict[str, dict[str, int]] = {}
    hardness: dict[str, list[int]] = {}
    for name, outcome, hard, count in store.outcome_totals(conn, since, until, account):
        outcomes.setdefault(name, {})[outcome] = outcomes.get(name, {}).get(outcome, 0) + count
        if outcome == "bounce":
            hardness.setdefault(name, [0, 0])[0 if hard else 1] += count
    daily: dict[str, dict[str, dict[str, int]]] = {}
    for name, rows in store.daily_counts(conn, since, until, account).items():
        for day, outcome, count in rows:
            daily.setdefault(name, {}).setdefault(day, {})[outcome] = count
    reasons = store.top_values(conn, "reason", "bounce", since, until, TOP_REASONS, account)
    domains = store.top_values(conn, "domain", "bounce", since, until, TOP_DOMAINS, account)
    latest_hard = store.latest(conn, "hard", since, until, LATEST, account)
    complaints = store.latest(conn, "complaint", since, until, LATEST, account)
    if account is not None:
        accounts = [account]
    else:
        accounts = list(names) + sorted((set(sent) | set(outcomes)) - set(names))
    return [_stats(name, sent.get(name, (0, 0)), outcomes.get(name, {}), hardness.get(name, [0, 0]),
                   daily.get(name, {}), reasons.get(name, []), domains.get(name, []), latest_hard.get(name, []),
                   complaints.get(name, [])) for name in accounts]


def _stats(name: str, sent: tuple[int, int], outcomes: dict[str, int], hardness: Sequence[int],
           days: dict[str, dict[str, int]], reasons: list[tuple[str, int]], domains: list[tuple[str, int]],
           hard: list[dict[str, object]], complaints: list[dict[str, object]]) -> AccountStats:
    return AccountStats(account=name, messages=sent[0], recipients=sent[1], outcomes=outcomes, hard=hardness[0],
                        soft=hardness[1], days=days, reasons=reasons, domains=domains, latest_hard=hard,
                        latest_complaints=complaints)
