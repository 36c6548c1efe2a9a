"""The whole bounce loop on a real Sendmail 8.17: the milter on the way out, the mailer on the way in.

The Sendmail lab (tests/support/sendmail_lab.py, its sendmail.cf built by m4 from
contrib/sendmail/bouncefilter.mc) runs ``bouncefilter milter`` as its INPUT_MAIL_FILTER
(each engine in turn) and ``bouncefilter pipe`` as contrib's ``bouncefilter`` mailer for
the bounce domain, as the unprivileged pipe user, through the same :class:`Loop` as the
Postfix lab. The peer refuses ``bad.example.test`` (550 5.1.1) and ``soft.example.test``
(452 4.2.2) and keeps the rest; Sendmail writes its own DSNs to the VERP address.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import pytest

from bouncefilter.core.record import TRACKING_HEADER

from support.bouncefilter_lab import Loop, complaint
from support.postfix_lab import BOUNCE_DOMAIN, SinkMessage, make_message
from support.sendmail_lab import SendmailLab, unavailable

pytestmark = [pytest.mark.sendmail, pytest.mark.slow]

SHOP = "orders@shop.example.test"
VERP = re.compile(rf"b\+([a-z2-7]+)@{re.escape(BOUNCE_DOMAIN)}")


@pytest.fixture(scope="module", params=["asyncio", "libmilter"])
def loop(request: pytest.FixtureRequest) -> Iterator[Loop]:
    """A Sendmail lab with bouncefilter on both paths, per milter engine; the pipe waits
    for a locked database only 300 ms (the locked-database test)."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("Milter", reason="pymilter is not installed in this interpreter (make test puts it in .venv)")
    with SendmailLab() as lab:
        loop = Loop(lab, {"shop.example.test": True}, suppression={"shop.example.test": "{enforce: off}"},
                    engine=request.param, busy_timeout_ms=300)
        yield from loop.running()


@pytest.fixture
def lab(loop: Loop) -> SendmailLab:
    """The lab emptied (queue, peer), the database too."""
    emptied = loop.emptied()
    assert isinstance(emptied, SendmailLab)
    return emptied


def test_tracked_mail_leaves_with_the_signed_verp_sender_the_header_and_its_record(lab: SendmailLab, loop: Loop):
    message = make_message(SHOP, "ann@dest.example.test", "Your order 1001",
                           headers=[("Return-Path", "<returns@shop.example.test>")])
    queue_id = lab.send(message, SHOP, ["ann@dest.example.test", "bob@dest.example.test"])

    (saved,) = lab.wait_sink()
    token = VERP.fullmatch(saved.sender)
    assert token is not None, saved.sender
    assert headers(saved, TRACKING_HEADER) == [token.group(1)]
    assert headers(saved, "Return-Path") == []  # read by the milter, then removed
    assert sorted(saved.recipients) == ["ann@dest.example.test", "bob@dest.example.test"]
    (row,) = loop.wait_rows("SELECT * FROM messages")
    assert (row["token"], row["account"], row["queue_id"], row["sender"]) == (token.group(1), "shop", queue_id, SHOP)
    assert (row["bounce_address"], row["subject"]) == ("returns@shop.example.test", "Your order 1001")


def test_null_sender_mail_passes_untouched(lab: SendmailLab, loop: Loop):
    lab.send(make_message("MAILER-DAEMON@other.example.net", "ann@dest.example.test", "A bounce"), "",
             ["ann@dest.example.test"])

    (saved,) = lab.wait_sink()
    assert saved.sender == "" and headers(saved, TRACKING_HEADER) == []
    sent = send(lab, loop, ["bob@dest.example.test"], "After the bounce")  # recorded once the first would be
    assert [row["message_key"] for row in loop.rows("SELECT * FROM messages")] == [sent["message_key"]]


def test_sendmails_own_dsn_reaches_the_pipe_and_is_a_hard_bounce_of_the_message(lab: SendmailLab, loop: Loop):
    sent = send(lab, loop, ["ann@dest.example.test", "gone@bad.example.test"], "Your order 1002")

    (row,) = loop.wait_rows("SELECT * FROM bounces")
    assert (row["outcome"], row["recipient"], row["reason"], row["hard"]) == (
        "bounce", "gone@bad.example.test", "userunknown", 1)
    assert (row["status"], row["account"], row["message_key"]) == ("5.1.1", "shop", sent["message_key"])
    assert (row["mail_from"], row["rcpt_to"]) == ("", verp_address(sent["token"]))  # --null-sender $n
    assert row["queue_id"] and row["queue_id"] != sent["queue_id"]  # the DSN's own, from $i
    lab.wait(lambda: "is empty" in lab.queue(), 10, "the DSN to leave the queue")  # exit 0: delivered


def test_a_soft_refusal_gives_a_delay_notice(lab: SendmailLab, loop: Loop):
    sent = send(lab, loop, ["full@soft.example.test"], "Newsletter 12")

    (row,) = loop.wait_rows("SELECT * FROM bounces", timeout=20)
    assert (row["outcome"], row["action"], row["recipient"]) == ("delay", "delayed", "full@soft.example.test")
    assert (row["status"], row["hard"], row["message_key"]) == ("4.2.2", 0, sent["message_key"])


def test_a_complaint_finds_the_message_by_its_tracking_header(lab: SendmailLab, loop: Loop):
    sent = send(lab, loop, ["ann@dest.example.test"], "Weekly offers")
    (delivered,) = lab.wait_sink()
    lab.send(complaint(delivered.message, "ann@dest.example.test"), "fbl-bounces@isp.example.net",
             [f"fbl@{BOUNCE_DOMAIN}"])

    (row,) = loop.wait_rows("SELECT * FROM bounces")
    assert (row["outcome"], row["feedback_type"], row["recipient"]) == ("complaint", "abuse", "ann@dest.example.test")
    assert (row["message_key"], row["mail_from"]) == (sent["message_key"], "fbl-bounces@isp.example.net")


def test_a_forged_token_is_kept_and_counts_against_nobody_and_a_second_copy_is_stored_once(
        lab: SendmailLab, loop: Loop):
    sent = send(lab, loop, ["gone@bad.example.test"], "Genuine")
    (genuine,) = loop.wait_rows("SELECT * FROM bounces")
    raw = loop.remote_copy(genuine["raw_id"])
    forged = verp_address(sent["token"][:-1] + ("a" if sent["token"][-1] != "a" else "b"))
    lab.send(raw, "", [forged])
    lab.send(raw, "", [verp_address(sent["token"])])  # the same DSN again, as from a second MX

    (row,) = loop.wait_rows("SELECT * FROM bounces WHERE rcpt_to = ?", forged)
    assert (row["outcome"], row["account"], row["message_key"]) == ("forged", "", "")
    lab.wait(lambda: "is empty" in lab.queue(), 10, "both copies delivered")
    assert [r["id"] for r in loop.rows("SELECT id FROM bounces WHERE message_key = ?", sent["message_key"])] == [
        genuine["id"]]


def test_a_locked_database_defers_the_dsn_which_is_stored_once_later(lab: SendmailLab, loop: Loop):
    holder = sqlite3.connect(loop.database, timeout=10, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        sent = send_unrecorded(lab, ["gone@bad.example.test"], "Locked")
        status = lab.wait(lambda: deferred(lab), 20, "the DSN deferred")
        assert re.fullmatch(r"Deferred: bouncefilter mailer \(.*\) exited with EX_TEMPFAIL", status), status
        assert loop.rows("SELECT id FROM bounces") == []
    finally:
        holder.rollback()
        holder.close()

    (row,) = loop.wait_rows("SELECT * FROM bounces", timeout=20)
    assert (row["outcome"], row["reason"], row["recipient"]) == ("bounce", "userunknown", "gone@bad.example.test")
    assert row["subject"] == sent
    lab.wait(lambda: "is empty" in lab.queue(), 10, "the DSN delivered")
    assert len(loop.rows("SELECT id FROM bounces")) == 1


# -- helpers ------------------------------------------------------------------------------


def send(lab: SendmailLab, loop: Loop, recipients: list[str], subject: str) -> dict[str, str]:
    """Send a shop message through the milter; its ``messages`` row once recorded."""
    queue_id = lab.send(make_message(SHOP, recipients[0], subject), SHOP, recipients)
    (row,) = loop.wait_rows("SELECT * FROM messages WHERE queue_id = ?", queue_id)
    return dict(row)


def send_unrecorded(lab: SendmailLab, recipients: list[str], subject: str) -> str:
    """Send a shop message while the database is locked (the milter records it later); its subject."""
    lab.send(make_message(SHOP, recipients[0], subject), SHOP, recipients)
    return subject


def deferred(lab: SendmailLab) -> str | None:
    """The status Sendmail keeps in the queue file of a deferred message (its M line), if any."""
    for path in (lab.daemon.folder / "queue").glob("qf*"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("MDeferred"):
                return line[1:]
    return None


def verp_address(token: str) -> str:
    return f"b+{token}@{BOUNCE_DOMAIN}"


def headers(saved: SinkMessage, name: str) -> list[str]:
    head = saved.message.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("utf-8", "replace")
    unfolded = re.sub(r"\n[ \t]+", " ", head)
    return [value.strip() for value in re.findall(rf"^{re.escape(name)}:(.*)$", unfolded, re.I | re.M)]
