"""The whole bounce loop on a real Postfix: sent through the milter, bounced, stored by the pipe.

The lab (tests/support/postfix_lab.py, configured from contrib/postfix) runs ``bouncefilter
milter`` on its submission port and ``bouncefilter pipe`` as the pipe transport of the
bounce domain, as the unprivileged pipe user, from an installation in the lab's folder
(tests/support/bouncefilter_lab.py). The account ``shop`` (shop.example.test) has tracking on.
Mail goes out to the lab's peers: ``dest.example.test`` accepts, ``bad.example.test``
answers 550 5.1.1, ``soft.example.test`` 452 4.2.2. What comes back, as Postfix's own
DSNs or injected on the MX port like mail from other hosts, is judged by what the
database holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from bouncefilter import store

from support.bouncefilter_lab import Loop, complaint, out_of_office
from support.postfix_lab import BOUNCE_DOMAIN, PostfixLab, make_message

pytestmark = pytest.mark.postfix

SHOP = "orders@shop.example.test"
VERP = re.compile(rf"b\+([a-z2-7]+)@{re.escape(BOUNCE_DOMAIN)}")


@pytest.fixture(scope="module")
def loop(postfix_lab: PostfixLab) -> Iterator[Loop]:
    """bouncefilter on both paths of the session's lab, for this module."""
    pytest.importorskip("Milter", reason="pymilter is not installed in this interpreter (make test puts it in .venv)")
    # The list is not enforced here: these tests send to the same addresses again and
    # again, which the pipe lists (enforcement: tests/test_suppression_postfix.py).
    loop = Loop(postfix_lab, {"shop.example.test": True}, suppression={"shop.example.test": "{enforce: off}"})
    yield from loop.running()


@pytest.fixture
def lab(postfix_lab: PostfixLab, loop: Loop) -> PostfixLab:
    """The lab emptied, with the loop's settings; the database emptied too."""
    return loop.emptied()


def test_a_hard_bounce_is_stored_against_the_sent_message_and_its_account(lab: PostfixLab, loop: Loop):
    mark = lab.log_mark()
    sent = send(lab, loop, ["ann@dest.example.test", "gone@bad.example.test"], "Your order 1001")

    (row,) = loop.wait_rows("SELECT * FROM bounces")
    assert (row["outcome"], row["kind"], row["recipient"]) == ("bounce", "bounce", "gone@bad.example.test")
    assert (row["reason"], row["hard"], row["status"], row["replycode"]) == ("userunknown", 1, "5.1.1", "550")
    assert (row["account"], row["message_key"], row["token"]) == ("shop", sent["message_key"], sent["token"])
    assert (row["original_message_id"], row["subject"]) == (sent["message_id"], "Your order 1001")
    assert (row["mail_from"], row["rcpt_to"]) == ("", verp_address(sent["token"]))
    lab.wait_log(r"relay=bouncefilter, .*status=sent", mark)  # the pipe exits after its commit
    assert lab.maillog(mark).count("relay=bouncefilter, delay=") == 1
    conn = store.connect(str(loop.database))
    try:
        (listed,) = store.bounces(conn, account="shop")
        raw = store.raw_message(conn, row["raw_id"])
    finally:
        conn.close()
    assert (listed["id"], listed["hard"]) == (row["id"], True)
    assert raw is not None and b"Subject: Undelivered Mail Returned to Sender" in raw
    assert f"X-Postfix-Queue-ID: {sent['queue_id']}".encode() in raw  # Postfix's DSN about the sent message
    assert f"id {row['queue_id']};".encode() in raw  # delivered to the pipe as itself


def test_a_soft_failure_gives_a_delay_notice_then_an_expiry(lab: PostfixLab, loop: Loop):
    # The lab warns after 1 s (delay_warning_time); the queue lifetimes are then cut to
    # 1 s, so the next attempt gives up on the message.
    sent = send(lab, loop, ["full@soft.example.test"], "Newsletter 12")

    (delay,) = loop.wait_rows("SELECT * FROM bounces")
    assert (delay["outcome"], delay["recipient"], delay["hard"]) == ("delay", "full@soft.example.test", 0)
    assert (delay["status"], delay["action"], delay["message_key"]) == ("4.2.2", "delayed", sent["message_key"])
    lab.configure(main={"maximal_queue_lifetime": "1s", "bounce_queue_lifetime": "1s"})
    lab.flush()

    (expired,) = loop.wait_rows("SELECT * FROM bounces WHERE outcome != 'delay'")
    assert (expired["outcome"], expired["recipient"], expired["action"]) == ("bounce", "full@soft.example.test", "failed")
    assert (expired["reason"], expired["hard"], expired["status"]) == ("mailboxfull", 0, "4.2.2")
    assert (expired["account"], expired["message_key"]) == ("shop", sent["message_key"])
    assert len(loop.rows("SELECT id FROM bounces")) == 2


def test_two_of_three_recipients_fail_one_report_two_records(lab: PostfixLab, loop: Loop):
    recipients = ["ann@dest.example.test", "bob@bad.example.test", "cat@bad.example.test"]
    sent = send(lab, loop, recipients, "Three recipients")

    rows = loop.wait_rows("SELECT * FROM bounces ORDER BY recipient", count=2)
    assert [row["recipient"] for row in rows] == ["bob@bad.example.test", "cat@bad.example.test"]
    assert {(row["outcome"], row["reason"], row["hard"], row["message_key"]) for row in rows} == {
        ("bounce", "userunknown", 1, sent["message_key"])}
    assert len({row["raw_id"] for row in rows}) == 1  # one DSN names both
    assert lab.wait_sink()[0].recipients == ("ann@dest.example.test",)
    assert len(loop.rows("SELECT id FROM bounces")) == 2


def test_a_complaint_to_the_feedback_address_finds_the_message_by_its_tracking_header(lab: PostfixLab, loop: Loop):
    sent = send(lab, loop, ["ann@dest.example.test"], "Weekly offers")
    (delivered,) = lab.wait_sink()
    report = complaint(delivered.message, "ann@dest.example.test")
    lab.send(report, "fbl-bounces@isp.example.net", [f"fbl@{BOUNCE_DOMAIN}"], port="mx")

    (row,) = loop.wait_rows("SELECT * FROM bounces")
    assert (row["outcome"], row["kind"], row["feedback_type"]) == ("complaint", "complaint", "abuse")
    assert (row["recipient"], row["account"], row["message_key"]) == ("ann@dest.example.test", "shop", sent["message_key"])
    assert (row["token"], row["rcpt_to"]) == (sent["token"], f"fbl@{BOUNCE_DOMAIN}")


def test_an_out_of_office_reply_to_the_verp_address_is_an_auto_reply(lab: PostfixLab, loop: Loop):
    sent = send(lab, loop, ["ann@dest.example.test"], "Your invoice")
    (delivered,) = lab.wait_sink()
    answer = out_of_office(delivered.message, "ann@dest.example.test", delivered.sender)
    lab.send(answer, "", [delivered.sender], port="mx")

    (row,) = loop.wait_rows("SELECT * FROM bounces")
    assert (row["outcome"], row["reason"], row["hard"]) == ("autoreply", "vacation", 0)
    assert (row["account"], row["message_key"], row["rcpt_to"]) == ("shop", sent["message_key"], delivered.sender)
    assert row["recipient"] == "ann@dest.example.test"


def test_a_bounce_to_a_forged_token_is_kept_and_counts_against_nobody(lab: PostfixLab, loop: Loop):
    sent = send(lab, loop, ["gone@bad.example.test"], "Genuine")
    (genuine,) = loop.wait_rows("SELECT * FROM bounces")
    forged = verp_address(tampered(sent["token"]))
    lab.send(loop.remote_copy(genuine["raw_id"]), "", [forged], port="mx")

    (row,) = loop.wait_rows("SELECT * FROM bounces WHERE rcpt_to = ?", forged)
    assert (row["outcome"], row["account"], row["message_key"]) == ("forged", "", "")
    assert row["recipient"] == "gone@bad.example.test"  # what the report says, for the record
    assert [r["id"] for r in loop.rows("SELECT id FROM bounces WHERE message_key = ?", sent["message_key"])] == [
        genuine["id"]]


def test_the_same_dsn_delivered_twice_is_stored_once(lab: PostfixLab, loop: Loop):
    # As when a remote MTA hands one report to two MX hosts: the second copy arrives
    # with other trace headers, and the pipe accepts it (exit 0) without a new row.
    sent = send(lab, loop, ["gone@bad.example.test"], "Twice")
    (first,) = loop.wait_rows("SELECT * FROM bounces")
    mark = lab.log_mark()
    lab.send(loop.remote_copy(first["raw_id"]), "", [verp_address(sent["token"])], port="mx")

    lab.wait_log(r"relay=bouncefilter, .*status=sent \(delivered via bouncefilter service", mark)
    assert [row["id"] for row in loop.rows("SELECT id FROM bounces")] == [first["id"]]
    assert len(loop.rows("SELECT id FROM raw_messages")) == 1


# -- helpers ------------------------------------------------------------------------------


def send(lab: PostfixLab, loop: Loop, recipients: list[str], subject: str) -> dict[str, str]:
    """Send a shop message through the milter; its ``messages`` row once recorded."""
    queue_id = lab.send(make_message(SHOP, recipients[0], subject), SHOP, recipients)
    (row,) = loop.wait_rows("SELECT * FROM messages WHERE queue_id = ?", queue_id)
    return dict(row)


def verp_address(token: str) -> str:
    return f"b+{token}@{BOUNCE_DOMAIN}"


def tampered(token: str) -> str:
    """``token`` with its last character changed: the MAC no longer matches."""
    return token[:-1] + ("a" if token[-1] != "a" else "b")
