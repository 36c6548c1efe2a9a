"""What the milter changes, decided without a connection: the pure half of the handler."""

from __future__ import annotations

from datetime import date

import pytest

from bouncefilter.config import Account
from bouncefilter.core import verp
from bouncefilter.core.record import TRACKING_HEADER
from bouncefilter.milter import decision
from bouncefilter.milter.decision import Message, Policy

KEY = b"0123456789abcdef0123456789abcdef"
SHOP = Account(name="shop", domains=("shop.example.com",))
NEWS = Account(name="news", senders=("news@news.example.com",), tracking=False)
POLICY = Policy(accounts=(SHOP, NEWS), verp_domain="bounces.example.com", prefix="b", signing_key=KEY)
MESSAGE_KEY = bytes(range(verp.KEY_BYTES))
NOW = 1_795_000_000.0  # 2026-11-18 UTC


def message(account: Account, sender: str, return_paths: tuple[str, ...] = (), params: tuple[str, ...] = ()) -> Message:
    made = Message(account, sender, params, "4QX1")
    made.recipients = ["a@example.net", "b@example.net"]
    for value in return_paths:
        made.read_header("return-path", value)
    made.read_header("subject", "=?utf-8?q?Order_=E2=84=96_7?=")
    made.read_header("message-id", "<m1@shop.example.com>")
    return made


@pytest.mark.parametrize(("sender", "login", "account"), [
    ("orders@shop.example.com", "", "shop"),
    ("news@news.example.com", "", "news"),
    ("", "", None),  # the null sender: a bounce
    ("b+anything@bounces.example.com", "", None),  # already ours
    ("someone@example.org", "", None),  # no account's
])
def test_mail_from_is_an_accounts_or_left_alone(sender, login, account):
    found = decision.account_for(POLICY, sender, login)
    assert (found.name if found else None) == account


def test_a_tracked_message_gets_a_signed_sender_the_header_and_a_record():
    change = decision.changes(POLICY, message(SHOP, "orders@shop.example.com", ("<returns@shop.example.com>",),
                                              ("RET=HDRS", "SIZE=100")), MESSAGE_KEY, NOW)
    sent = change.sent
    assert sent is not None
    assert change.sender == f"<b+{sent.token}@bounces.example.com>"
    assert change.esmtp == f"RET=HDRS ENVID={sent.token}"
    assert change.header == (TRACKING_HEADER, sent.token) and change.drop_return_paths == 1
    verdict = verp.decode(change.sender.strip("<>"), "b", "bounces.example.com", [KEY], date(2026, 11, 18), 60)
    assert (verdict.status, verdict.message_key) == (verp.VALID, MESSAGE_KEY.hex())
    assert (sent.account, sent.queue_id, sent.sender, sent.bounce_address) == (
        "shop", "4QX1", "orders@shop.example.com", "returns@shop.example.com")
    assert (sent.subject, sent.message_id, sent.recipients, sent.sent_at) == (
        "Order № 7", "<m1@shop.example.com>", ("a@example.net", "b@example.net"), NOW)


def test_the_same_facts_give_the_same_changes():
    facts = message(SHOP, "orders@shop.example.com")
    assert decision.changes(POLICY, facts, MESSAGE_KEY, NOW) == decision.changes(POLICY, facts, MESSAGE_KEY, NOW)


def test_a_clients_envelope_id_is_kept_and_none_is_added_when_envid_is_off():
    change = decision.changes(POLICY, message(SHOP, "orders@shop.example.com", params=("ENVID=mine",)), MESSAGE_KEY, NOW)
    assert change.esmtp == "ENVID=mine"
    quiet = decision.changes(POLICY._replace(envid=False), message(SHOP, "orders@shop.example.com"), MESSAGE_KEY, NOW)
    assert quiet.esmtp is None and quiet.sent is not None


@pytest.mark.parametrize(("return_paths", "sender", "dropped"), [
    (("<list-bounces@news.example.com>",), "<list-bounces@news.example.com>", 1),
    (("<NEWS@news.example.com>",), None, 1),  # the sender itself: nothing to change
    (("garbage", "<second@news.example.com>"), "<second@news.example.com>", 2),
    ((), None, 0),
])
def test_untracked_mail_only_takes_a_submitted_return_path(return_paths, sender, dropped):
    change = decision.changes(POLICY, message(NEWS, "news@news.example.com", return_paths), MESSAGE_KEY, NOW)
    assert (change.sender, change.header, change.sent, change.drop_return_paths) == (sender, None, None, dropped)


def test_tracking_needs_a_verp_domain():
    change = decision.changes(POLICY._replace(verp_domain=""), message(SHOP, "orders@shop.example.com"), MESSAGE_KEY, NOW)
    assert change == decision.Changes()
