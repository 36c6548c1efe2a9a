"""``bouncefilter pipe`` as Postfix runs it: the real command, one process per message.

Every test runs the installed console script (``.venv/bin/bouncefilter``) with the
message on standard input, and holds it to the contract of design.md: exit 0 or 75 and
nothing else, at most one ``4.3.0`` line on standard output, every message stored once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from bouncefilter import store
from bouncefilter.core import verp

import messages

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MIB = 1 << 20
SCRIPT = Path(sys.executable).with_name("bouncefilter")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "bouncefilter"]
CONFIG = f"""\
database: bf.db
database_busy_timeout_ms: {{busy}}
verp: {{{{domain: {messages.DOMAIN}, keys: [{messages.KEY}]}}}}
logging: {{{{target: stderr, level: DEBUG}}}}
accounts:
  - {{{{name: shop, domains: [shop.example.com]}}}}
"""


@dataclass
class Site:
    """A configuration, its migrated database, and the pipe command pointed at them."""

    root: Path
    config: Path
    database: Path

    def record(self, recipients: Sequence[str] = ("nobody@example.net",), account: str = "shop",
               issued: date | None = None, bounce_address: str = "", conn: sqlite3.Connection | None = None) -> str:
        """Record a sent message as the milter would; its token."""
        key = os.urandom(verp.KEY_BYTES)
        token = messages.token(key, issued)
        db = conn or store.connect(str(self.database))
        store.record_messages(db, (store.SentMessage(
            message_key=key.hex(), token=token, account=account, sent_at=time.time(), queue_id="4OUT1",
            message_id="<order-1@shop.example.com>", sender="orders@shop.example.com",
            bounce_address=bounce_address, recipients=tuple(recipients),
        ),))
        return token

    def pipe(self, raw: bytes, recipient: str, queue_id: str = "4IN1", sender: str = "",
             options: Sequence[str] = (), timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """``bouncefilter pipe`` with ``raw`` on standard input, as master.cf runs it."""
        argv = [*COMMAND, "--config", str(self.config), "pipe", *options, "--queue-id", queue_id, sender, recipient]
        return subprocess.run(argv, input=raw, capture_output=True, timeout=timeout, check=False, env=_environment())

    def rows(self, **where: object) -> list[dict[str, object]]:
        conn = store.connect(str(self.database))
        try:
            return [row for row in store.bounces(conn) if all(row[k] == v for k, v in where.items())]
        finally:
            conn.close()

    def count(self, sql: str) -> int:
        conn = sqlite3.connect(self.database)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "BOUNCEFILTER_CONFIG"}


def make_site(root: Path, busy: int = 10_000, extra: str = "", parsed_copy: bool = True) -> Site:
    """A site in ``root``; with ``parsed_copy`` its configuration is also cached as
    ``bouncefilter check-config`` leaves it in production."""
    config = root / "bouncefilter.yaml"
    config.write_text(CONFIG.format(busy=busy) + extra, encoding="utf-8")
    if parsed_copy:
        from bouncefilter.config import write_cache

        write_cache(str(config))
    database = root / "bf.db"
    conn = store.connect(str(database))
    store.migrate(conn)
    conn.close()
    return Site(root, config, database)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


def obeys_contract(done: subprocess.CompletedProcess[bytes]) -> None:
    """Exit 0 with nothing on stdout, or 75 with exactly one line starting ``4.3.0 ``."""
    assert done.returncode in (0, 75), (done.returncode, done.stdout, done.stderr[-2000:])
    if done.returncode == 0:
        assert done.stdout == b"", done.stdout
    else:
        lines = done.stdout.splitlines()
        assert len(lines) == 1 and lines[0].startswith(b"4.3.0 "), done.stdout
    assert b"Traceback" not in done.stdout


def stored(site: Site, done: subprocess.CompletedProcess[bytes], **where: object) -> dict[str, object]:
    """The one row matching ``where`` after a delivery that must have succeeded."""
    obeys_contract(done)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    (row,) = site.rows(**where)
    return row


# -- each outcome -----------------------------------------------------------------------


def test_a_bounce_is_stored_linked_to_its_message_and_account(site):
    token = site.record(bounce_address="bounces@shop.example.com")
    raw = messages.postfix_dsn(token, "nobody@example.net", queue_id="4AbC1")
    done = site.pipe(raw, messages.address(token), queue_id="4IN7")
    row = stored(site, done, recipient="nobody@example.net")
    assert row["outcome"] == "bounce" and row["kind"] == "bounce"
    assert (row["reason"], row["hard"], row["status"], row["replycode"]) == ("userunknown", True, "5.1.1", "550")
    assert row["account"] == "shop"
    assert row["token"] == token and row["message_key"] == verp.verify(token, [messages.KEY.encode()], date.today(),
                                                                      60).message_key
    assert row["bounce_address"] == "bounces@shop.example.com"
    assert row["original_message_id"] == "<order-1@shop.example.com>"
    assert (row["queue_id"], row["mail_from"], row["rcpt_to"]) == ("4IN7", "", messages.address(token))
    conn = store.connect(str(site.database))
    assert store.raw_message(conn, int(row["raw_id"])) == raw  # type: ignore[arg-type]
    line = (f"4IN7: recipient=<nobody@example.net>, outcome=bounce, reason=userunknown, hard=yes, status=5.1.1, "
            f"account=shop, token={token}, id={row['id']}")
    assert line in done.stderr.decode()


def test_a_hard_bounce_for_a_recipient_suppresses_it_and_a_forged_expired_or_stranger_one_never_does(site):
    token = site.record(["Nobody@Example.NET"])
    stored(site, site.pipe(messages.postfix_dsn(token, "nobody@example.net"), messages.address(token)))
    forged = messages.token(key=messages.OTHER_KEY)
    stored(site, site.pipe(messages.postfix_dsn(forged, "victim@example.net"), messages.address(forged)),
           outcome="forged")
    stranger = site.record(["someone@example.net"])
    stored(site, site.pipe(messages.postfix_dsn(stranger, "victim@example.net"), messages.address(stranger)),
           outcome="stranger")
    expired = site.record(["late@example.net"], issued=date.today() - timedelta(days=90))
    stored(site, site.pipe(messages.postfix_dsn(expired, "late@example.net"), messages.address(expired)),
           outcome="expired")
    conn = store.connect(str(site.database))
    listed = [(s.account, s.address, s.reason, s.detail) for _, s in
              store.suppressions.listings(conn, store.suppressions.ListQuery(time.time()))]
    assert listed == [("shop", "nobody@example.net", "hard", "userunknown")]


def test_the_bounce_address_falls_back_to_the_sender(site):
    token = site.record()
    row = stored(site, site.pipe(messages.postfix_dsn(token), messages.address(token)))
    assert row["bounce_address"] == "orders@shop.example.com"


def test_a_delay_notice(site):
    token = site.record(["slow@example.org"])
    raw = messages.postfix_dsn(token, "slow@example.org", status="4.2.2",
                               diagnostic="452 4.2.2 <{r}>: Mailbox full")
    row = stored(site, site.pipe(raw, messages.address(token)))
    assert (row["outcome"], row["kind"], row["hard"], row["account"]) == ("delay", "delay", False, "shop")


def test_a_complaint_found_by_the_token_in_the_returned_headers(site):
    token = site.record(["reader@example.net"])
    row = stored(site, site.pipe(messages.arf(token), f"fbl@{messages.DOMAIN}"))
    assert (row["outcome"], row["reason"], row["recipient"], row["account"]) == \
        ("complaint", "feedback", "reader@example.net", "shop")
    assert row["token"] == token


def test_an_auto_reply(site):
    token = site.record(["holiday@example.net"])
    row = stored(site, site.pipe(messages.vacation(token), messages.address(token), sender="holiday@example.net"))
    assert (row["outcome"], row["reason"], row["account"], row["mail_from"]) == \
        ("autoreply", "vacation", "shop", "holiday@example.net")


def test_a_challenge_request_is_its_own_outcome_and_no_bounce(site):
    token = site.record(["guarded@example.net"])
    row = stored(site, site.pipe(messages.challenge(token), messages.address(token), sender="guarded@example.net"))
    assert (row["outcome"], row["kind"], row["reason"], row["hard"], row["recipient"], row["account"]) == \
        ("challenge", "challenge", "challenge", 0, "guarded@example.net", "shop")


def test_a_persons_reply_is_kept_with_its_raw_message(site):
    token = site.record()
    raw = messages.reply(token)
    row = stored(site, site.pipe(raw, messages.address(token), sender="someone@example.net"))
    assert (row["outcome"], row["kind"], row["recipient"], row["account"]) == ("reply", "", "", "shop")
    assert row["original_message_id"] == "<order-1@shop.example.com>"  # from the sent message's row
    assert store.raw_message(store.connect(str(site.database)), int(row["raw_id"])) == raw  # type: ignore[arg-type]


def test_a_forged_token_is_kept_marked_and_tied_to_nothing(site):
    site.record()
    forged = messages.token(key=messages.OTHER_KEY)
    row = stored(site, site.pipe(messages.postfix_dsn(forged), messages.address(forged)))
    assert (row["outcome"], row["account"], row["message_key"], row["token"]) == ("forged", "", "", forged)
    assert row["reason"] == "userunknown"  # what the message claims, kept for the record


def test_a_mangled_token_in_the_envelope_is_forged_even_if_the_body_has_a_good_one(site):
    token = site.record()
    for mangled in (token[:5] + ("c" if token[5] == "b" else "b") + token[6:], token[:-1], "junk"):
        row = stored(site, site.pipe(messages.postfix_dsn(token), f"b+{mangled}@{messages.DOMAIN}"),
                     rcpt_to=f"b+{mangled}@{messages.DOMAIN}")
        assert (row["outcome"], row["account"], row["token"]) == ("forged", "", mangled)


def test_an_expired_token_is_kept_marked(site):
    token = site.record(issued=date.today() - timedelta(days=90))
    row = stored(site, site.pipe(messages.postfix_dsn(token), messages.address(token)))
    assert (row["outcome"], row["account"], row["token"]) == ("expired", "shop", token)


def test_mail_with_no_token_at_all(site):
    untracked = messages.postfix_dsn("x" * 31).replace(b"X-Bouncefilter-Token: " + b"x" * 31 + b"\n", b"")
    untracked = untracked.replace(b"b+" + b"x" * 31, b"orders")
    row = stored(site, site.pipe(untracked, f"postmaster@{messages.DOMAIN}"))
    assert (row["outcome"], row["kind"], row["recipient"], row["account"]) == \
        ("notoken", "bounce", "nobody@example.net", "")
    plain = b"From: someone@example.net\nTo: info@bounces.example.com\nSubject: hello\n\nHi.\n"
    row = stored(site, site.pipe(plain, f"info@{messages.DOMAIN}"), rcpt_to=f"info@{messages.DOMAIN}")
    assert (row["outcome"], row["recipient"]) == ("unknown", "")


def test_a_report_about_three_recipients_stores_three_rows(site):
    recipients = ["a@example.net", "b@example.net", "c@example.org"]
    token = site.record(recipients)
    done = site.pipe(dsn_about(token, recipients), messages.address(token))
    obeys_contract(done)
    assert sorted(str(row["recipient"]) for row in site.rows(outcome="bounce")) == recipients
    assert done.stderr.decode().count("4IN1: recipient=<") == 3


def dsn_about(token: str, recipients: Sequence[str], queue_id: str = "4Vq4Zx6Pt8z") -> bytes:
    """A Postfix DSN to ``token``'s VERP address with one per-recipient block per address."""
    raw = messages.postfix_dsn(token, recipients[0], queue_id=queue_id)
    start = raw.index(b"Final-Recipient")
    block = raw[start:raw.index(b"\n\n", start) + 2]
    more = b"".join(block.replace(recipients[0].encode(), r.encode()) for r in recipients[1:])
    return raw.replace(block, block + more)


# -- trust: a valid token proves the message, not the address ----------------------------


def test_a_valid_token_counts_only_addresses_the_message_was_sent_to(site):
    token = site.record(["Ann@Example.NET", "bob@example.net"])
    strangers = [f"subscriber{n}@victim.example.org" for n in range(5)]
    done = site.pipe(dsn_about(token, ["ann@example.net", *strangers]), messages.address(token))
    obeys_contract(done)
    assert [row["recipient"] for row in site.rows(outcome="bounce")] == ["ann@example.net"]
    rows = site.rows(outcome="stranger")
    assert sorted(str(row["recipient"]) for row in rows) == strangers
    assert {(row["account"], row["kind"], row["reason"]) for row in rows} == {("shop", "bounce", "userunknown")}
    assert site.count("SELECT count(*) FROM outbox") == 0
    assert "outcome=stranger" in done.stderr.decode()
    report = subprocess.run([*COMMAND, "--config", str(site.config), "report"], capture_output=True, text=True,
                            check=True, env=_environment()).stdout
    assert "  bounce rate   50.0 %\n" in report and "  not counted   stranger 5\n" in report


def test_an_original_recipient_the_message_was_sent_to_is_enough(site):
    token = site.record(["sales@example.net"])
    raw = messages.postfix_dsn(token, "jo.smith@mail.example.net").replace(
        b"Original-Recipient: rfc822;jo.smith@mail.example.net", b"Original-Recipient: rfc822;sales@example.net")
    row = stored(site, site.pipe(raw, messages.address(token)))
    assert (row["outcome"], row["recipient"], row["original_recipient"]) == (
        "bounce", "jo.smith@mail.example.net", "sales@example.net")


def test_one_counted_event_per_message_recipient_and_kind_however_the_bytes_differ(site):
    token = site.record(["nobody@example.net"])
    first = site.pipe(messages.postfix_dsn(token, queue_id="4FIRST"), messages.address(token))
    second = site.pipe(messages.postfix_dsn(token, queue_id="4SECOND", diagnostic="550 5.1.1 <{r}>: no such user"),
                       messages.address(token), queue_id="4IN2")
    obeys_contract(first)
    obeys_contract(second)
    assert len(site.rows(outcome="bounce")) == 1
    assert "duplicate" in second.stderr.decode()
    delay = site.pipe(messages.postfix_dsn(token, status="4.2.2", queue_id="4THIRD",
                                           diagnostic="452 4.2.2 <{r}>: Mailbox full"), messages.address(token))
    obeys_contract(delay)
    assert len(site.rows(outcome="delay")) == 1  # another kind: another event


def test_one_sent_message_cannot_produce_rows_without_end(tmp_path):
    site = make_site(tmp_path, extra="pipe: {max_records_per_message: 6}\n")
    token = site.record(["nobody@example.net"])
    done = site.pipe(dsn_about(token, [f"x{n}@victim.example.org" for n in range(10)]), messages.address(token))
    obeys_contract(done)
    assert done.returncode == 0
    assert len(site.rows(outcome="stranger")) == 6
    (capped,) = site.rows(parser="capped")
    assert (capped["outcome"], capped["recipient"], capped["account"]) == ("unknown", "", "shop")
    assert capped["raw_id"] is not None
    assert "4 rows over the limit of 6 for one sent message" in done.stderr.decode()
    again = site.pipe(dsn_about(token, ["y@victim.example.org"], queue_id="4AGAIN"), messages.address(token))
    obeys_contract(again)
    later = [row for row in site.rows(parser="capped") if row["id"] != capped["id"]]
    assert len(later) == 1 and later[0]["raw_id"] is None  # no room left: kept as keep_unverified says


def forged_dsn() -> tuple[bytes, str]:
    forged = messages.token(key=messages.OTHER_KEY)
    return messages.postfix_dsn(forged), messages.address(forged)


@pytest.mark.parametrize(("keep", "rows", "raw"), [("record", 1, False), ("raw", 1, True), ("drop", 0, False)])
def test_mail_no_token_of_ours_ties_to_a_message_is_kept_as_configured(tmp_path, keep, rows, raw):
    site = make_site(tmp_path, extra=f"pipe: {{keep_unverified: {keep}}}\n")
    message, address = forged_dsn()
    done = site.pipe(message, address)
    obeys_contract(done)
    assert done.returncode == 0
    assert len(site.rows()) == rows
    assert site.count("SELECT count(*) FROM raw_messages") == int(raw)
    if keep == "drop":
        assert "dropped: forged (pipe.keep_unverified: drop)" in done.stderr.decode()


def test_the_default_keeps_an_unverified_messages_rows_not_its_bytes(site):
    message, address = forged_dsn()
    row = stored(site, site.pipe(message, address))
    assert (row["outcome"], row["reason"], row["raw_id"]) == ("forged", "userunknown", None)
    token = site.record()
    stored(site, site.pipe(messages.postfix_dsn(token), messages.address(token)), outcome="bounce")
    assert site.count("SELECT count(*) FROM raw_messages") == 1  # the verified one only


# -- big bounces ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_report_about_twenty_thousand_recipients_stores_every_one(site):
    recipients = [f"user{n}@example.net" for n in range(20_000)]
    token = site.record(recipients)
    raw = dsn_about(token, recipients)
    listing = b"".join(b"<" + r.encode() + b">: host mx.example.net[192.0.2.1] said: 550 5.1.1 User unknown\n"
                       for r in recipients)
    raw = raw.replace(b"be delivered to one or more recipients.\n", b"be delivered to one or more recipients.\n" + listing)
    assert len(raw) > 6_000_000  # the notification alone is three times what used to be read
    done = site.pipe(raw, messages.address(token), timeout=120)
    obeys_contract(done)
    assert site.count("SELECT count(*) FROM bounces WHERE outcome = 'bounce'") == 20_000


@pytest.mark.parametrize("where", ["after a large notification", "below large headers"])
def test_a_report_beyond_the_first_mebibyte_is_still_read(site, where):
    token = site.record()
    raw = messages.postfix_dsn(token)
    if where == "below large headers":
        trace = b"".join(b"Received: from relay%d.example.net by mx.example.test; Thu, 16 May 2024 06:02:31 +0000\n" % n
                         for n in range(20_000))
        raw = trace + raw
    else:
        raw = raw.replace(b"be delivered to one or more recipients.\n",
                          b"be delivered to one or more recipients.\n" + b"The mail system says more.\n" * 80_000)
    assert len(raw) > 3 * MIB // 2
    row = stored(site, site.pipe(raw, messages.address(token)))
    assert (row["outcome"], row["recipient"], row["reason"]) == ("bounce", "nobody@example.net", "userunknown")


# -- once and only once -------------------------------------------------------------------


def test_the_same_bounce_delivered_twice_or_by_two_mx_hosts_is_stored_once(site):
    token = site.record()
    raw = messages.postfix_dsn(token)
    assert site.pipe(raw, messages.address(token)).returncode == 0
    again = site.pipe(raw, messages.address(token), queue_id="4IN2")
    obeys_contract(again)
    assert again.returncode == 0 and "duplicate" in again.stderr.decode()
    # A second MX adds its own trace fields and writes CRLF: still the same bounce.
    other_mx = (b"Delivered-To: " + messages.address(token).encode() + b"\nReceived: from mx2.example.com by "
                b"mx2.bounces.example.com; Thu, 16 May 2024 06:02:33 +0000\n" + raw).replace(b"\n", b"\r\n")
    assert site.pipe(other_mx, messages.address(token).upper(), queue_id="4IN3").returncode == 0
    assert len(site.rows()) == 1
    assert site.count("SELECT count(*) FROM raw_messages") == 1


def test_the_same_message_to_two_of_our_addresses_is_two_events(site):
    first, second = site.record(), site.record()
    raw = messages.reply(first)
    assert site.pipe(raw, messages.address(first)).returncode == 0
    assert site.pipe(raw, messages.address(second)).returncode == 0
    assert {row["token"] for row in site.rows()} == {first, second}
    assert site.count("SELECT count(*) FROM raw_messages") == 1


def test_one_bounce_delivered_by_eight_processes_at_once_is_stored_once(site):
    token = site.record()
    raw = messages.postfix_dsn(token)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: site.pipe(raw, messages.address(token), queue_id=f"Q{n}"), range(8)))
    for done in results:
        obeys_contract(done)
        assert done.returncode == 0
    assert len(site.rows()) == 1


@pytest.mark.slow
def test_sixteen_pipes_at_once_store_two_thousand_bounces_exactly_once(site):
    deliveries = []
    conn = store.connect(str(site.database))
    conn.execute("BEGIN")
    for n in range(2000):
        recipient = f"user{n}@example.net"
        token = site.record([recipient], conn=conn)
        deliveries.append((messages.postfix_dsn(token, recipient, queue_id=f"4Q{n:05d}"), messages.address(token)))
    conn.execute("COMMIT")
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda d: site.pipe(*d, timeout=300), deliveries))
    for done in results:
        obeys_contract(done)
    assert [done.returncode for done in results] == [0] * 2000
    assert site.count("SELECT count(*) FROM bounces WHERE outcome = 'bounce' AND account = 'shop'") == 2000
    assert site.count("SELECT count(DISTINCT recipient) FROM bounces") == 2000
    assert site.count("SELECT count(*) FROM raw_messages") == 2000


# -- failures of ours: 75 and a 4.3.0 line, then stored on the next try --------------------


def test_a_database_locked_longer_than_the_busy_timeout_defers_then_the_retry_stores(tmp_path):
    site = make_site(tmp_path, busy=200)
    token = site.record()
    raw = messages.postfix_dsn(token)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(30)", str(site.database)],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        started = time.monotonic()
        done = site.pipe(raw, messages.address(token))
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
    obeys_contract(done)
    assert done.returncode == 75 and b"locked" in done.stdout
    assert site.rows() == []
    retry = site.pipe(raw, messages.address(token))
    obeys_contract(retry)
    assert retry.returncode == 0 and len(site.rows()) == 1


@pytest.mark.parametrize(
    ("config", "says"),
    [
        (None, b"cannot read the configuration"),
        ("database: [\n", b"not valid YAML"),
        ("databse: x.db\n", b"unknown key"),
        ("verp: {domain: bounces.example.com, keys_file: missing.keys}\n", b"verp.keys_file"),
        ("database: no/such/folder/bf.db\n", b"unable to open database"),
        ("database: .\n", b"database"),
    ],
)
def test_a_bad_configuration_defers(tmp_path, config, says):
    path = tmp_path / "bouncefilter.yaml"
    if config is not None:
        path.write_text(config, encoding="utf-8")
    site = Site(tmp_path, path, tmp_path / "bf.db")
    done = site.pipe(messages.reply(messages.token()), "b+x@bounces.example.com")
    obeys_contract(done)
    assert done.returncode == 75 and says in done.stdout


@pytest.mark.parametrize("argv", [[], ["only-one"], ["--queue-id"], ["--bogus", "x", "", "b@x"]])
def test_a_bad_command_line_defers(site, argv):
    done = subprocess.run([*COMMAND, "--config", str(site.config), "pipe", *argv], input=b"x", capture_output=True,
                          timeout=60, check=False, env=_environment())
    obeys_contract(done)
    assert done.returncode == 75 and b"usage: bouncefilter pipe" in done.stdout


def test_a_pipe_that_cannot_even_be_loaded_defers(site):
    # As during an upgrade that has replaced half of the files: the import itself fails.
    broken = ("import sys; sys.modules['bouncefilter.pipe.delivery'] = None\n"
              "from bouncefilter.cli.main import main; raise SystemExit(main())")
    done = subprocess.run([sys.executable, "-c", broken, "--config", str(site.config), "pipe", "<>", "b@x.test"],
                          input=b"x", capture_output=True, timeout=60, check=False, env=_environment())
    obeys_contract(done)
    assert done.returncode == 75 and b"cannot load the pipe (ModuleNotFoundError" in done.stdout


def test_addresses_that_look_like_options_are_still_addresses(site):
    done = site.pipe(messages.reply(messages.token()), "--help", sender="-f")
    obeys_contract(done)
    assert done.returncode == 0 and site.rows()[0]["mail_from"] == "-f"


@pytest.mark.parametrize(("sender", "stored"), [("MAILER-DAEMON", ""), ("mailer-daemon", ""),
                                                ("MAILER-DAEMON@mx.example.test", "MAILER-DAEMON@mx.example.test"),
                                                ("fbl@isp.example.net", "fbl@isp.example.net")])
def test_sendmails_name_for_the_null_sender_is_the_null_sender(site, sender, stored):
    # A Sendmail prog mailer passes $f, which is $n (MAILER-DAEMON) for Sendmail's own DSNs.
    done = site.pipe(messages.reply(messages.token()), "b+x@bounces.example.com", sender=sender,
                     options=["--null-sender", "MAILER-DAEMON"])
    obeys_contract(done)
    assert done.returncode == 0 and site.rows()[0]["mail_from"] == stored


def test_null_sender_parses_with_the_other_options():
    from bouncefilter.pipe import command

    assert command.parse(["pipe", "--null-sender=MAILER-DAEMON", "--queue-id", "Q1", "MAILER-DAEMON", "b@x"]) == (
        command.Arguments("", "b@x", "Q1"))
    assert command.parse(["pipe", "--queue-id", "Q1", "MAILER-DAEMON", "b@x"]).sender == "MAILER-DAEMON"
    assert "--null-sender needs a value" in command.parse(["pipe", "--null-sender", "", "b@x"]).problem


def test_an_empty_database_file_defers_until_the_administrator_says_it_is_new(site):
    site.database.write_bytes(b"")  # truncated by accident: the data is gone, and nobody must miss that
    message, address = messages.postfix_dsn(messages.token()), messages.address(messages.token())
    done = site.pipe(message, address)
    obeys_contract(done)
    assert done.returncode == 75 and b"is an empty file, not a database" in done.stdout
    assert site.database.stat().st_size == 0
    listing = subprocess.run([*COMMAND, "--config", str(site.config), "bounces"], capture_output=True, text=True,
                             check=False, env=_environment())
    assert listing.returncode == 1 and "is an empty file" in listing.stderr
    migrate = subprocess.run([*COMMAND, "--config", str(site.config), "db", "migrate"], capture_output=True,
                             text=True, check=False, env=_environment())
    assert migrate.returncode == 0, migrate.stderr
    assert site.pipe(message, address).returncode == 0 and len(site.rows()) == 1


def test_a_schema_that_is_older_defers_unless_auto_migrate_and_newer_always_defers(tmp_path):
    site = make_site(tmp_path, extra="database_auto_migrate: false\n")
    site.database.unlink()
    token = messages.token()
    done = site.pipe(messages.reply(token), messages.address(token))
    obeys_contract(done)
    assert done.returncode == 75 and b"bouncefilter db migrate" in done.stdout
    site.config.write_text(site.config.read_text().replace("false", "true"))
    assert site.pipe(messages.reply(token), messages.address(token)).returncode == 0
    conn = sqlite3.connect(site.database)
    conn.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    conn.close()
    done = site.pipe(messages.vacation(token), messages.address(token))
    obeys_contract(done)
    assert done.returncode == 75 and b"newer" in done.stdout


def test_a_message_larger_than_max_bytes_is_stored_cut_and_marked(tmp_path):
    site = make_site(tmp_path, extra="pipe: {max_bytes: 4096}\n", parsed_copy=False)
    token = site.record()
    raw = messages.postfix_dsn(token) + b"x" * 100_000 + b"\n"
    done = site.pipe(raw, messages.address(token))
    row = stored(site, done)
    assert row["outcome"] == "bounce" and row["reason"] == "userunknown" and row["truncated"] == 1
    conn = sqlite3.connect(site.database)
    assert conn.execute("SELECT size, truncated, length(data) < 4096 FROM raw_messages").fetchone() == \
        (len(raw), 1, 1)
    assert "truncated" in done.stderr.decode()


# -- hostile input ---------------------------------------------------------------------------


def hostile_inputs() -> list[tuple[str, bytes]]:
    """Every broken fixture, random byte strings, and every fixture cut at a random point."""
    rng = random.Random(4)
    inputs = [(path.name, path.read_bytes()) for path in sorted((FIXTURES / "broken").glob("*.eml"))]
    inputs += [(f"random-{n}", rng.randbytes(rng.randrange(1, 20_000))) for n in range(8)]
    inputs += [(f"random-lines-{n}", b"\n".join(rng.randbytes(rng.randrange(0, 80)) for _ in range(300)))
               for n in range(4)]
    for path in sorted(FIXTURES.glob("*/*.eml")):
        raw = path.read_bytes()
        inputs.append((f"cut-{path.parent.name}-{path.name}", raw[: rng.randrange(0, max(1, len(raw)))]))
    return inputs


@pytest.mark.slow
def test_hostile_input_only_ever_exits_0_or_75_and_is_stored(site):
    inputs = hostile_inputs()
    recipients = [f"b+{'a' * 31}@{messages.DOMAIN}", f"postmaster@{messages.DOMAIN}", "b+\udcff@x", ""]

    def deliver(item: tuple[int, tuple[str, bytes]]) -> tuple[str, subprocess.CompletedProcess[bytes]]:
        index, (name, raw) = item
        recipient = recipients[index % len(recipients)]
        return name, site.pipe(raw, recipient.encode(errors="surrogateescape").decode(errors="surrogateescape"),
                               queue_id=f"H{index}")

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(deliver, enumerate(inputs)))
    for name, done in results:
        try:
            obeys_contract(done)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
        assert done.returncode == 0, (name, done.stdout)
    # Stored once per distinct message and envelope (an empty cut is the same as another).
    distinct = {(store.message_digest(raw), recipients[i % len(recipients)]) for i, (_, raw) in enumerate(inputs)}
    assert len({row["queue_id"] for row in site.rows()}) == len(distinct)


def test_a_pipe_killed_mid_write_leaves_the_database_whole_and_the_retry_stores(site):
    recipients = [f"user{n}@example.net" for n in range(300)]
    token = site.record(recipients)
    raw = messages.postfix_dsn(token, recipients[0])
    block = raw[raw.index(b"Final-Recipient"):raw.index(b"\n\n", raw.index(b"Final-Recipient")) + 2]
    raw = raw.replace(block, b"".join(block.replace(recipients[0].encode(), r.encode()) for r in recipients))
    raw += os.urandom(6_000_000).hex().encode() + b"\n"  # compressing and writing it takes a while

    def start(recipient: str) -> subprocess.Popen[bytes]:
        """A pipe process that has been handed the whole message."""
        argv = [*COMMAND, "--config", str(site.config), "pipe", "--queue-id", "4KILL", "", recipient]
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=_environment())
        assert process.stdin is not None
        process.stdin.write(raw)
        process.stdin.close()
        return process

    timing = start(f"b+{'a' * 31}@{messages.DOMAIN}")  # the same work for another envelope, to time it
    started = time.monotonic()
    assert timing.wait() == 0
    duration = time.monotonic() - started
    for fraction in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
        process = start(messages.address(token))
        time.sleep(duration * fraction)
        process.send_signal(signal.SIGKILL)
        process.wait()
        conn = sqlite3.connect(site.database)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        count = conn.execute(f"SELECT count(*) FROM bounces WHERE rcpt_to = '{messages.address(token)}'").fetchone()[0]
        conn.close()
        assert count in (0, len(recipients)), fraction  # all of a delivery or nothing
    retry = site.pipe(raw, messages.address(token), queue_id="4KILL")
    obeys_contract(retry)
    assert retry.returncode == 0
    assert site.count(f"SELECT count(*) FROM bounces WHERE rcpt_to = '{messages.address(token)}'") == len(recipients)


def test_the_json_of_a_stored_row_is_what_bounces_prints(site, capsys):
    from bouncefilter.cli import main

    token = site.record()
    assert site.pipe(messages.postfix_dsn(token), messages.address(token)).returncode == 0
    assert main.main(["bounces", "--config", str(site.config), "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    data = json.loads(line)
    for key in ("id", "received_at", "account", "token", "outcome", "recipient", "reason", "hard", "status",
                "replycode", "diagnostic", "feedback_type", "parser", "original_message_id"):
        assert key in data, key
    assert data["account"] == "shop" and data["received_at"].endswith("Z")


def test_a_message_the_classifier_fails_on_is_stored_unclassified_not_deferred(site, monkeypatch, capsys):
    import io

    from bouncefilter.classify import pipeline
    from bouncefilter.pipe import command
    from bouncefilter.pipe import delivery as pipe

    def broken(raw: bytes) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline, "classify", broken)
    token = site.record()
    code = pipe.main(command.parse(["pipe", "--config", str(site.config), "--queue-id", "4BUG", "", messages.address(token)]),
                     io.BytesIO(messages.postfix_dsn(token)))
    assert code == 0 and capsys.readouterr().out == ""
    row = stored(site, subprocess.CompletedProcess([], 0, b"", b""))
    assert (row["outcome"], row["parser"], row["account"]) == ("unknown", "error", "shop")


def test_log_lines_go_to_syslog_when_there_is_one(site, monkeypatch, tmp_path, capsys):
    import io
    import syslog

    from bouncefilter import logs
    from bouncefilter.pipe import command
    from bouncefilter.pipe import delivery as pipe

    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(syslog, "openlog", lambda *args: None)
    monkeypatch.setattr(syslog, "syslog", lambda priority, text: sent.append((priority, text)))
    monkeypatch.setattr(logs, "SYSLOG_SOCKET", str(site.config))  # any path that exists
    site.config.write_text(site.config.read_text().replace("target: stderr", "target: syslog"))
    token = site.record()
    assert pipe.main(command.parse(["pipe", "--config", str(site.config), "--queue-id", "4LOG", "", messages.address(token)]),
                     io.BytesIO(messages.postfix_dsn(token))) == 0
    assert [text for _, text in sent if text.startswith("4LOG: recipient=<nobody@example.net>, outcome=bounce")]
    assert capsys.readouterr() == ("", "")
    sent.clear()
    assert pipe.main(command.parse(["pipe", "--queue-id=4LOG", "--bogus", "", "b@x"]), io.BytesIO(b"")) == 75
    assert capsys.readouterr().out.startswith("4.3.0 bouncefilter: unknown option '--bogus'")
    assert sent == [(syslog.LOG_ERR, "error: NOQUEUE: deferred: unknown option '--bogus'; usage: bouncefilter pipe "
                                     "[--config PATH] [--queue-id ID] [--null-sender NAME] SENDER RECIPIENT")]
