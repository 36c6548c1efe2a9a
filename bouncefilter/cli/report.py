"""What ``bouncefilter bounces`` and ``bouncefilter report`` print.

The rows come from :mod:`bouncefilter.store`; this module only formats them: JSON lines
(one object per stored row, times as ISO 8601 UTC), a table, and the per-account
overview.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TextIO

from bouncefilter import store
from bouncefilter.config import Settings
from bouncefilter.core.record import UNTRUSTED
from bouncefilter.core.window import iso

_TABLE_COLUMNS = ("received_at", "account", "outcome", "recipient", "reason", "hard", "status")
_NO_ACCOUNT = "(no account)"


def json_lines(out: TextIO, rows: Iterable[Mapping[str, object]]) -> None:
    """One JSON object per row; ``received_at`` as ISO 8601 UTC."""
    for row in rows:
        data = dict(row)
        data["received_at"] = iso(float(data["received_at"]))  # type: ignore[arg-type]
        out.write(json.dumps(data, ensure_ascii=False) + "\n")


def table(out: TextIO, rows: Iterable[Mapping[str, object]]) -> None:
    """One line per row: when, account, outcome, recipient, reason, hard, status."""
    out.write("\t".join(_TABLE_COLUMNS) + "\n")
    for row in rows:
        values = dict(row)
        values["received_at"] = iso(float(values["received_at"]))  # type: ignore[arg-type]
        values["hard"] = "hard" if values["hard"] else "soft" if values["outcome"] == "bounce" else "-"
        out.write("\t".join(str(values[column] or "-") for column in _TABLE_COLUMNS) + "\n")


def overview(out: TextIO, conn: store.Connection, settings: Settings, since: float | None, until: float) -> None:
    """The report: one block per account (configured ones first), then the rows no
    account owns."""
    sent = store.sent_totals(conn, since, until)
    totals: dict[str, dict[str, list[int]]] = {}
    for account, outcome, hard, count in store.outcome_totals(conn, since, until):
        totals.setdefault(account, {}).setdefault(outcome, [0, 0])[0 if hard else 1] += count
    reasons = store.top_values(conn, "reason", "bounce", since, until)
    domains = store.top_values(conn, "domain", "bounce", since, until)
    latest = store.latest_hard_bounces(conn, since, until)
    start = iso(since) if since is not None else "the beginning"
    out.write(f"bouncefilter report: {start} to {iso(until)} ({settings.database})\n")
    names = [account.name for account in settings.accounts]
    names += sorted((set(sent) | set(totals)) - set(names) - {""})
    for name in names:
        out.write("\n")
        _account_block(out, name, sent.get(name, (0, 0)), totals.get(name, {}), reasons.get(name, []),
                       domains.get(name, []), latest.get(name, []))
    if "" in totals:
        out.write(f"\n{_NO_ACCOUNT}\n")
        counts = {outcome: sum(pair) for outcome, pair in totals[""].items()}
        out.write("  " + ", ".join(f"{outcome} {counts[outcome]}" for outcome in sorted(counts)) + "\n")


def _account_block(out: TextIO, name: str, sent: tuple[int, int], totals: Mapping[str, list[int]],
                   reasons: list[tuple[str, int]], domains: list[tuple[str, int]],
                   latest: list[tuple[float, str, str, str]]) -> None:
    messages, recipients = sent
    hard, soft = totals.get("bounce", [0, 0])
    rate = f"{100 * (hard + soft) / recipients:.1f} %" if recipients else "-"
    lines = [
        ("messages sent", f"{messages} ({recipients} recipients)"),
        ("bounced", f"{hard + soft} ({hard} hard, {soft} soft)"),
        ("bounce rate", rate),
        ("delays", str(sum(totals.get("delay", [0])))),
        ("complaints", str(sum(totals.get("complaint", [0])))),
        ("auto-replies", str(sum(totals.get("autoreply", [0])))),
        ("replies", str(sum(totals.get("reply", [0])))),
        ("top reasons", _pairs(reasons)),
        ("top domains", _pairs(domains)),
    ]
    untrusted = {outcome: sum(totals[outcome]) for outcome in UNTRUSTED if outcome in totals}
    if untrusted:
        lines.append(("not counted", ", ".join(f"{outcome} {count}" for outcome, count in untrusted.items())))
    out.write(f"{name}\n")
    for label, value in lines:
        out.write(f"  {label:<14}{value}\n")
    if latest:
        out.write("  latest hard bounces\n")
        for received_at, recipient, reason, status in latest:
            out.write(f"    {iso(received_at)}  {recipient}  {reason}  {status or '-'}\n")


def _pairs(pairs: list[tuple[str, int]]) -> str:
    return ", ".join(f"{value or '-'} {count}" for value, count in pairs) or "-"
