"""The suppression list enforced by the milter on a real Postfix (the lab), end to end.

The loop of tests/test_loop_postfix.py (the milter on the submission port, the pipe on
the bounce domain, one database) with three tracked accounts: ``shop`` and ``other``
refuse suppressed recipients at RCPT TO (the default), ``lists`` discards them. A
message to ``bad.example.test`` is refused by that peer with 550 5.1.1, comes back as a
hard bounce, and the pipe lists the address; the milter, which re-reads the list every
second, then refuses it. Tests wait for the milter's list by asking it (an RCPT TO
without a message), never by sleeping.
"""

from __future__ import annotations

import json
import re
import smtplib
import time
from collections.abc import Iterator, Sequence

import pytest

from bouncefilter import store

from support.bouncefilter_lab import Loop
from support.postfix_lab import PostfixLab, make_message

pytestmark = pytest.mark.postfix

SHOP = "orders@shop.example.test"
OTHER = "hello@other.example.test"
LISTS = "news@lists.example.test"
REFUSAL = re.compile(r"5\.1\.1 <(?P<address>[^>]+)>: suppressed by bouncefilter since \d{4}-\d\d-\d\d "
                     r"\((?P<why>[^)]+)\); see bouncefilter suppression explain")


@pytest.fixture(scope="module")
def loop(postfix_lab: PostfixLab) -> Iterator[Loop]:
    """bouncefilter on both paths of the session's lab, in a folder (and database) of its own."""
    pytest.importorskip("Milter", reason="pymilter is not installed in this interpreter (make test puts it in .venv)")
    loop = Loop(postfix_lab, {"shop.example.test": True, "other.example.test": True, "lists.example.test": True},
                suppression={"lists.example.test": "{enforce: discard}"}, folder="suppression")
    yield from loop.running()


@pytest.fixture
def lab(postfix_lab: PostfixLab, loop: Loop) -> PostfixLab:
    """The lab emptied, with the loop's settings (the list is kept: each test has its own addresses)."""
    return loop.emptied()


def test_a_hard_bounce_suppresses_the_next_message_is_refused_at_rcpt_and_lifting_lets_it_through(
        lab: PostfixLab, loop: Loop):
    gone = "unknown-1@bad.example.test"
    first = submit(lab, SHOP, [gone], "First")
    assert first.refused == {} and first.queue_id
    (bounce,) = loop.wait_rows("SELECT * FROM bounces WHERE recipient = ?", gone)
    assert (bounce["reason"], bounce["hard"], bounce["account"]) == ("userunknown", 1, "shop")
    loop.wait_rows("SELECT id FROM suppressions WHERE account = 'shop' AND address_key = ? AND reason = 'hard'", gone)
    wait_for_list(lab, SHOP, gone, refused=True)

    second = submit(lab, SHOP, [gone, "kim@dest.example.test"], "Second")
    ((code, text),) = second.refused.values()
    assert code == 550 and list(second.refused) == [gone]
    found = REFUSAL.fullmatch(text)
    assert found and found["address"] == gone and found["why"] == "userunknown", text
    assert found.group(0).endswith(f"since {time.strftime('%Y-%m-%d', time.gmtime(bounce['received_at']))} "
                                   "(userunknown); see bouncefilter suppression explain")
    (arrived,) = lab.wait_sink()
    assert arrived.recipients == ("kim@dest.example.test",)  # the other recipient went on
    (row,) = loop.wait_rows("SELECT recipients FROM messages WHERE queue_id = ?", second.queue_id)
    assert json.loads(row["recipients"]) == ["kim@dest.example.test"]

    conn = store.connect(str(loop.database))
    try:
        assert store.suppressions.lift(conn, "shop", gone, time.time(), "test", admin=False) == "lifted"
    finally:
        conn.close()
    wait_for_list(lab, SHOP, gone, refused=False)
    third = submit(lab, SHOP, [gone], "Third")
    assert third.refused == {} and third.queue_id  # sent again: the peer refuses it once more
    loop.wait_rows("SELECT id FROM bounces WHERE recipient = ?", gone, count=2)


def test_one_accounts_list_never_touches_another_accounts_mail(lab: PostfixLab, loop: Loop):
    listed = "left-2@dest.example.test"
    suppress(loop, "shop", listed)
    wait_for_list(lab, SHOP, listed, refused=True)
    sent = submit(lab, OTHER, [listed], "Other's mail")
    assert sent.refused == {} and sent.queue_id
    (arrived,) = lab.wait_sink()
    assert arrived.recipients == (listed,)


def test_discard_accepts_then_removes_the_recipient_and_a_message_left_with_none_is_dropped(
        lab: PostfixLab, loop: Loop):
    listed = "left-3@dest.example.test"
    suppress(loop, "lists", listed)
    suppress(loop, "shop", "sentinel-3@dest.example.test")  # listed after: once the milter has it, it has both
    wait_for_list(lab, SHOP, "sentinel-3@dest.example.test", refused=True)
    mark = lab.log_mark()

    sent = submit(lab, LISTS, [listed, "lee@dest.example.test"], "Newsletter")
    assert sent.refused == {}  # accepted at RCPT TO
    (arrived,) = lab.wait_sink()
    assert arrived.recipients == ("lee@dest.example.test",)
    (row,) = loop.wait_rows("SELECT recipients FROM messages WHERE queue_id = ?", sent.queue_id)
    assert json.loads(row["recipients"]) == ["lee@dest.example.test"]

    alone = submit(lab, LISTS, [listed], "Newsletter, alone")
    assert alone.refused == {}
    lab.wait_log(r"milter-discard: END-OF-MESSAGE", mark)
    log = loop.folder.joinpath("milter.log").read_text()
    assert f"{sent.queue_id}: account=lists to=<{listed}> discarded: suppressed (manual, -)" in log
    assert f"account=lists from=<{LISTS}> discarded: all 1 recipients suppressed" in log
    assert len(lab.sink_messages()) == 1
    time.sleep(0.3)  # the milter's writer commits every 0.1 s: a record would be there by now
    assert loop.rows("SELECT message_key FROM messages WHERE queue_id = ?", alone.queue_id) == []


# -- helpers ------------------------------------------------------------------------------


class Submitted:
    """What Postfix answered a message: the recipients it refused (code, text) and the queue id."""

    def __init__(self, refused: dict[str, tuple[int, str]], queue_id: str) -> None:
        self.refused = refused
        self.queue_id = queue_id


def submit(lab: PostfixLab, sender: str, recipients: Sequence[str], subject: str) -> Submitted:
    """Send a message on the submission port, going on past refused recipients (as an
    application does); no DATA when every recipient is refused."""
    refused: dict[str, tuple[int, str]] = {}
    with smtplib.SMTP("127.0.0.1", lab.ports["submission"], local_hostname="client.example.test", timeout=30) as smtp:
        smtp.ehlo()
        assert smtp.mail(sender)[0] == 250
        for recipient in recipients:
            code, reply = smtp.rcpt(recipient)
            if code != 250:
                refused[recipient] = (code, reply.decode())
        if len(refused) == len(recipients):
            smtp.rset()
            return Submitted(refused, "")
        code, reply = smtp.data(make_message(sender, recipients[0], subject))
    assert code == 250, reply
    found = re.search(rb"queued as ([0-9A-Za-z]+)", reply)
    return Submitted(refused, found.group(1).decode() if found else "")


def wait_for_list(lab: PostfixLab, sender: str, recipient: str, refused: bool, timeout: float = 5.0) -> None:
    """Wait until the milter refuses (or no longer refuses) ``recipient`` of ``sender``'s
    account, asking with RCPT TO and no message. It re-reads the list every second."""
    deadline = time.monotonic() + timeout
    while True:
        with smtplib.SMTP("127.0.0.1", lab.ports["submission"], local_hostname="client.example.test",
                          timeout=30) as smtp:
            smtp.ehlo()
            smtp.mail(sender)
            code, _ = smtp.rcpt(recipient)
            smtp.rset()
        if (code == 550) == refused:
            return
        assert time.monotonic() < deadline, f"the milter's list did not {'list' if refused else 'lift'} {recipient}"
        time.sleep(0.1)


def suppress(loop: Loop, account: str, address: str) -> None:
    """List ``address`` for ``account`` by hand, as the CLI and the API do."""
    conn = store.connect(str(loop.database))
    try:
        assert store.suppressions.suppress(conn, account, address, "manual", time.time(), "test")
    finally:
        conn.close()
