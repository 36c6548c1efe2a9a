"""``bouncefilter report``, ``bouncefilter bounces`` and ``bouncefilter db purge`` over a
database filled through the store, as the milter and the pipe fill it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bouncefilter import store
from bouncefilter.cli import commands, main, parser
from bouncefilter.core.record import BounceRecord

DAY = 86400.0
CONFIG = """\
database: bf.db
accounts:
  - {name: shop, domains: [shop.example.com], tracking: false}
  - {name: news, domains: [news.example.org], tracking: false}
  - {name: quiet, domains: [quiet.example.org], tracking: false}
"""


def add(conn, at: float, outcome: str, recipient: str = "", account: str = "shop", kind: str = "",
        reason: str = "", hard: bool = False, status: str = "") -> None:
    """Store one delivery with one row, as the pipe would."""
    record = BounceRecord(recipient=recipient, kind=kind or outcome, reason=reason, hard=hard, status=status)
    raw = f"Message-Id: <{at}-{recipient}-{outcome}@example.test>\n\nx\n".encode()
    store.store_delivery(conn, store.Delivery(raw, at, rcpt_to="b+t@bounces.example.com"),
                         [store.Bounce(record, outcome, account=account)])


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "bouncefilter.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    conn = store.connect(str(tmp_path / "bf.db"))
    store.migrate(conn)
    now = time.time()
    for n in range(4):  # four messages to 25 recipients each, one of them old
        recipients = tuple(f"r{n}-{i}@example.net" for i in range(25))
        store.record_messages(conn, (store.SentMessage(f"{n:016x}", "t", "shop", now - (40 if n == 3 else 1) * DAY,
                                                     recipients=recipients),))
    add(conn, now - 3600, "bounce", "gone@example.net", reason="userunknown", hard=True, status="5.1.1")
    add(conn, now - 3000, "bounce", "nohost@example.org", reason="hostunknown", hard=True, status="5.1.2")
    add(conn, now - 2000, "bounce", "x@example.net", reason="userunknown", hard=True, status="5.1.1")
    add(conn, now - 1000, "bounce", "full@example.net", reason="mailboxfull", status="4.2.2")
    add(conn, now - 900, "delay", "slow@example.net", reason="expired", status="4.4.1")
    add(conn, now - 800, "complaint", "angry@example.net", reason="feedback")
    add(conn, now - 700, "autoreply", "away@example.net", reason="vacation")
    add(conn, now - 600, "reply")
    add(conn, now - 500, "forged", "x@example.net", kind="bounce", reason="userunknown", hard=True, account="")
    add(conn, now - 400, "notoken", "y@example.net", kind="bounce", account="")
    add(conn, now - 300, "expired", "z@example.net", kind="bounce", reason="userunknown", hard=True)
    add(conn, now - 40 * DAY, "bounce", "old@example.net", reason="userunknown", hard=True)
    add(conn, now - 200, "bounce", "n@example.com", account="news", reason="blocked", status="5.7.1")
    conn.close()
    return str(path)


def report(config: str, capsys, *argv: str) -> str:
    assert main.main(["report", "--config", config, *argv]) == commands.EXIT_OK
    return capsys.readouterr().out


def block(text: str, name: str) -> str:
    """The lines of one account's block in the report."""
    lines = text.splitlines()
    start = lines.index(name)
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    return "\n".join(lines[start:end])


def test_the_report_counts_each_account_over_the_last_30_days(config, capsys):
    shop = block(report(config, capsys), "shop")
    assert "messages sent 3 (75 recipients)" in shop
    assert "bounced       4 (3 hard, 1 soft)" in shop
    assert "bounce rate   5.3 %" in shop
    assert "delays        1" in shop and "complaints    1" in shop
    assert "auto-replies  1" in shop and "replies       1" in shop
    assert "top reasons   userunknown 2, hostunknown 1, mailboxfull 1" in shop
    assert "top domains   example.net 3, example.org 1" in shop
    assert "not counted   expired 1" in shop
    latest = shop[shop.index("latest hard bounces"):].splitlines()[1:]
    assert [line.split()[1] for line in latest] == ["x@example.net", "nohost@example.org", "gone@example.net"]


def test_the_report_shows_idle_accounts_and_what_no_account_owns(config, capsys):
    text = report(config, capsys)
    assert "messages sent 0 (0 recipients)" in block(text, "quiet") and "bounce rate   -" in block(text, "quiet")
    assert "top reasons   blocked 1" in block(text, "news")
    assert block(text, "(no account)").splitlines()[1].strip() == "forged 1, notoken 1"


def test_the_report_window_follows_since(config, capsys):
    shop = block(report(config, capsys, "--since", "60d"), "shop")
    assert "messages sent 4 (100 recipients)" in shop and "bounced       5 (4 hard, 1 soft)" in shop
    shop = block(report(config, capsys, "--since", "50m"), "shop")
    assert "messages sent 0" in shop and "bounced       2 (1 hard, 1 soft)" in shop


def test_bounces_lists_json_lines_by_window_and_account(config, capsys):
    assert main.main(["bounces", "--config", config, "--json", "--since", "1d", "--account", "shop"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["outcome"] for row in rows] == ["bounce", "bounce", "bounce", "bounce", "delay", "complaint",
                                                "autoreply", "reply", "expired"]
    first = rows[0]
    assert (first["recipient"], first["reason"], first["hard"], first["account"]) == \
        ("gone@example.net", "userunknown", True, "shop")
    assert first["received_at"].endswith("Z") and isinstance(first["id"], int)
    assert main.main(["bounces", "--config", config, "--json", "--until", "2000-01-01"]) == 0
    assert capsys.readouterr().out == ""


def test_bounces_prints_a_table_by_default(config, capsys):
    assert main.main(["bounces", "--config", config, "--account", "news"]) == 0
    header, line = capsys.readouterr().out.splitlines()
    assert header.split("\t") == ["received_at", "account", "outcome", "recipient", "reason", "hard", "status"]
    assert line.split("\t")[1:] == ["news", "bounce", "n@example.com", "blocked", "soft", "5.7.1"]


def test_an_unknown_account_is_named_as_token_create_names_it(config, capsys):
    assert main.main(["bounces", "--config", config, "--account", "nosuch"]) == 1
    assert "no account 'nosuch' in the configuration (accounts: shop, news, quiet)" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["bounces", "report"])
def test_an_inverted_window_is_refused_as_the_api_refuses_it(config, capsys, command):
    assert main.main([command, "--config", config, "--since", "2026-12-03", "--until", "2026-12-01"]) == 2
    assert "end must be after start" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "7w", "2026-12-03T10:00"])
def test_a_bad_moment_is_a_usage_error(config, value):
    with pytest.raises(SystemExit) as caught:
        main.main(["bounces", "--config", config, "--since", value])
    assert caught.value.code == commands.EXIT_USAGE


def test_moments_are_dates_datetimes_or_ages():
    assert parser._moment("2024-05-16") == 1715817600.0
    assert parser._moment("2024-05-16T02:00:00+02:00") == 1715817600.0
    assert parser._moment("2024-05-16 00:00Z") == 1715817600.0
    assert abs(parser._moment("2d") - (time.time() - 2 * DAY)) < 5
    assert abs(parser._moment("90m") - (time.time() - 5400)) < 5


def test_db_purge_applies_the_retention_settings(config, capsys):
    with open(config, "a", encoding="utf-8") as handle:
        handle.write("retention: {days: 30, raw_days: 1}\n")
    assert main.main(["db", "purge", "--config", config]) == 0
    out = capsys.readouterr().out
    assert out.endswith(": deleted 1 bounce records, 1 raw messages, 1 sent messages\n")
    assert main.main(["db", "purge", "--config", config]) == 0
    assert "deleted 0 bounce records, 0 raw messages, 0 sent messages" in capsys.readouterr().out


def test_reading_commands_fail_with_1_on_a_database_they_cannot_use(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("database: missing/bf.db\n", encoding="utf-8")
    for argv in (["report"], ["bounces"], ["db", "purge"]):
        assert main.main([*argv, "--config", str(path)]) == commands.EXIT_FAILED
        assert "missing/bf.db" in capsys.readouterr().err
    path.write_text("database_auto_migrate: false\ndatabase: bf.db\n", encoding="utf-8")
    assert main.main(["bounces", "--config", str(path)]) == commands.EXIT_FAILED
    assert "bouncefilter db migrate" in capsys.readouterr().err


def test_the_report_and_the_overview_page_mean_the_same_30_days(config, capsys):
    """Both read whole UTC days, today included: [midnight 29 days ago, next midnight)."""
    from datetime import datetime, timedelta, timezone

    from bouncefilter.core import window

    since, until = window.last_days(time.time())
    tomorrow = datetime.now(timezone.utc).date() + timedelta(days=1)
    assert datetime.fromtimestamp(until, timezone.utc).date() == tomorrow and until - since == 30 * DAY
    head = report(config, capsys).splitlines()[0]
    assert f"{(tomorrow - timedelta(days=30)).isoformat()}T00:00:00Z to {tomorrow.isoformat()}T00:00:00Z" in head
