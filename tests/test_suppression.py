"""The suppression list: which records list an address (the core's rules, with the clock
given), and how the store keeps the list, its tallies and its history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bouncefilter import store
from bouncefilter.core import suppression
from bouncefilter.core.record import BounceRecord
from bouncefilter.core.suppression import DAY, Rules, Tally

T0 = 1_796_000_000.0  # 2026-11-29
RULES = Rules()
SHOP = store.suppressions.Setting(RULES, ("shop:webhook:http://127.0.0.1:1/hook",))


# -- the rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "reason", "hard", "cause"), [
    ("bounce", "userunknown", True, "hard"),
    ("bounce", "hostunknown", True, "hard"),
    ("bounce", "userunknown", False, "soft"),  # a 4xx "user unknown" may be a passing fault
    ("bounce", "mailboxfull", False, "soft"),
    ("bounce", "expired", False, "soft"),
    ("bounce", "networkerror", False, "soft"),
    ("bounce", "blocked", False, None),  # about the sender, not the address
    ("bounce", "spamdetected", False, None),
    ("bounce", "policyviolation", False, None),
    ("bounce", "norelaying", False, None),
    ("bounce", "undefined", False, None),
    ("complaint", "feedback", False, "complaint"),
    ("delay", "mailboxfull", False, None),
    ("autoreply", "vacation", False, None),
    ("delivered", "delivered", False, None),
])
def test_what_a_counted_record_is_to_the_list(kind, reason, hard, cause):
    assert suppression.cause(kind, reason, hard) == cause


def test_one_hard_bounce_suppresses_until_lifted_by_default():
    assert suppression.judge(Tally(), "hard", T0, RULES) == (Tally(hard=1), "hard", None)


def test_hard_after_two_needs_two():
    first = suppression.judge(Tally(), "hard", T0, RULES._replace(hard_after=2))
    assert first.reason == "" and first.tally.hard == 1
    assert suppression.judge(first.tally, "hard", T0 + 60, RULES._replace(hard_after=2)).reason == "hard"


def test_three_soft_bounces_in_a_week_suppress_for_the_duration():
    first = suppression.judge(Tally(), "soft", T0, RULES)
    second = suppression.judge(first.tally, "soft", T0 + 3.5 * DAY, RULES)
    assert first.reason == second.reason == "" and 1.7 < second.tally.soft < 1.71  # 1 + 0.5^0.5
    third = suppression.judge(second.tally, "soft", T0 + 7 * DAY, RULES)  # 1 + 0.71 + 0.5 = 2.2
    assert third.reason == "soft" and third.until == T0 + 21 * DAY and third.tally.soft == 0


def test_two_soft_bounces_never_suppress_and_three_too_far_apart_neither():
    second = suppression.judge(suppression.judge(Tally(), "soft", T0, RULES).tally, "soft", T0 + 60, RULES)
    assert second.reason == ""  # the first has lost a little weight already
    tally = Tally()
    for day in (0, 5, 10):  # 1 + 0.61 + 0.37 = 1.98
        verdict = suppression.judge(tally, "soft", T0 + day * DAY, RULES)
        assert verdict.reason == ""
        tally = verdict.tally


def test_soft_bounces_a_fortnight_apart_never_add_up():
    tally = Tally()
    for fortnight in range(10):
        verdict = suppression.judge(tally, "soft", T0 + fortnight * 14 * DAY, RULES)
        assert verdict.reason == ""
        tally = verdict.tally
    assert tally.soft < 4 / 3  # 1 + 1/4 + 1/16 + ...: two half-lives apart, never near 3


def test_a_clock_that_goes_back_never_grows_the_score():
    assert suppression.decayed(Tally(soft=2, scored_at=T0), T0 - DAY, 7) == 2


# -- the store -------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    conn = store.connect(str(tmp_path / "bouncefilter.db"))
    store.migrate(conn)
    return conn


def counted(recipient: str, reason: str = "userunknown", hard: bool = True, kind: str = "bounce",
            message: str = "m1", account: str = "shop") -> store.Bounce:
    """A row the pipe counts: a verified token, an address the message was sent to."""
    record = BounceRecord(recipient=recipient, kind=kind, reason=reason, hard=hard, status="5.1.1" if hard else "4.2.2")
    return store.Bounce(record, kind, account=account, message_key=message)


def deliver(db: sqlite3.Connection, at: float, *rows: store.Bounce, raw: bytes = b"") -> list[int | None]:
    body = raw or f"Subject: dsn {at} {[r.record.recipient for r in rows]}\n\nreport\n".encode()
    return store.store_delivery(db, store.Delivery(body, at, rcpt_to="b+t@bounces.example.com"), list(rows),
                                suppressing={"shop": SHOP, "news": store.suppressions.Setting()})


def test_a_hard_bounce_lists_the_address_with_its_record_and_a_history(db):
    (bounce_id,) = deliver(db, T0, counted("Alice@Example.NET"))
    found = store.suppressions.find(db, "shop", "<alice@example.net>")
    assert found is not None and found.active(T0 + 365 * DAY)
    assert (found.address, found.reason, found.detail, found.created_at, found.until, found.bounce_ids) == (
        "Alice@example.net", "hard", "userunknown", T0, None, (bounce_id,))
    assert [(h["change"], h["reason"], h["bounce_id"], h["actor"]) for h in
            store.suppressions.history(db, "shop", "alice@example.net")] == [("created", "hard", bounce_id, "pipe")]
    (target,) = db.execute("SELECT target FROM outbox WHERE history_id IS NOT NULL").fetchall()
    assert target == SHOP.targets


def test_the_same_bounce_twice_or_a_second_report_of_it_counts_once(db):
    rules_two = {"shop": SHOP._replace(rules=RULES._replace(hard_after=2))}
    for copy in (b"Subject: one\n\nx\n", b"Subject: one\n\nx\n", b"Subject: other bytes\n\nx\n"):
        store.store_delivery(db, store.Delivery(copy, T0, rcpt_to="b+t@bounces.example.com"),
                             [counted("alice@example.net")], suppressing=rules_two)
    assert store.suppressions.find(db, "shop", "alice@example.net") is None  # one event: 1 of 2


def test_rows_that_are_not_counted_never_list(db):
    stranger = counted("eve@example.net")._replace(outcome="stranger")
    forged = counted("eve@example.net")._replace(outcome="forged", message_key="")
    deliver(db, T0, stranger, forged, counted("eve@example.net", "blocked", hard=False))
    assert store.suppressions.find(db, "shop", "eve@example.net") is None
    assert list(store.suppressions.listings(db, store.suppressions.ListQuery(T0))) == []


def test_a_soft_listing_lapses_by_itself(db):
    for day, message in ((0, "m1"), (5, "m2")):
        deliver(db, T0 + day * DAY, counted("full@example.net", "mailboxfull", hard=False, message=message))
    assert store.suppressions.find(db, "shop", "full@example.net") is None  # a score of 1.6
    deliver(db, T0 + 6 * DAY, counted("full@example.net", "mailboxfull", hard=False, message="m3"))
    found = store.suppressions.find(db, "shop", "full@example.net")
    assert found is not None and found.reason == "soft" and found.until == T0 + 20 * DAY
    assert found.active(T0 + 19 * DAY) and not found.active(T0 + 20 * DAY)
    active = lambda at: [a for a, *_ in store.suppressions.active_listings(db, at)]  # noqa: E731
    assert active(T0 + 19 * DAY) == ["shop"] and active(T0 + 20 * DAY) == []
    changes = [h["change"] for h in store.suppressions.history(db, "shop", "full@example.net")]
    assert changes == ["counted", "counted", "created"]


def test_one_accounts_bounces_never_list_an_address_for_another(db):
    deliver(db, T0, counted("bob@example.net", account="news", message="n1"))
    assert store.suppressions.find(db, "shop", "bob@example.net") is None
    assert store.suppressions.find(db, "news", "bob@example.net") is not None


def test_a_complaint_lists_at_once_and_only_an_administrator_lifts_it(db):
    deliver(db, T0, counted("carol@example.net", "feedback", hard=False, kind="complaint"))
    lifted = store.suppressions.lift
    assert lifted(db, "shop", "carol@example.net", T0 + 60, "api:k1", admin=False) == "refused"
    assert lifted(db, "shop", "carol@example.net", T0 + 60, "cli:root", admin=True) == "lifted"
    assert lifted(db, "shop", "carol@example.net", T0 + 61, "cli:root", admin=True) == "not listed"
    found = store.suppressions.find(db, "shop", "carol@example.net")
    assert found is not None and not found.active(T0 + 61) and (found.lifted_at, found.lifted_by) == (T0 + 60, "cli:root")


def test_lifting_starts_the_tally_again(db):
    deliver(db, T0, counted("dan@example.net"))
    assert store.suppressions.lift(db, "shop", "dan@example.net", T0 + 1, "cli:root", admin=True) == "lifted"
    assert store.suppressions.find(db, "shop", "dan@example.net").active(T0 + 2) is False  # type: ignore[union-attr]
    deliver(db, T0 + 3, counted("dan@example.net", message="m2"))
    again = store.suppressions.find(db, "shop", "dan@example.net")
    assert again is not None and again.active(T0 + 4) and again.created_at == T0 + 3
    changes = [h["change"] for h in store.suppressions.history(db, "shop", "dan@example.net")]
    assert changes == ["created", "lifted", "created"]


def test_listing_by_hand_and_the_list_read_by_cursor(db):
    add = store.suppressions.suppress
    assert add(db, "shop", "a@example.net", "manual", T0, "cli:root", detail="asked us to stop")
    assert not add(db, "shop", "A@example.net", "manual", T0 + 1, "cli:root")  # listed already
    assert add(db, "shop", "b@example.net", "import", T0 + 2, "cli:root", created_at=T0 - 30 * DAY)
    with pytest.raises(ValueError, match="reason must be one of"):
        add(db, "shop", "c@example.net", "bored", T0, "cli:root")
    query = store.suppressions.ListQuery(T0 + 10)
    first = list(store.suppressions.listings(db, query, limit=1))
    assert [s.address for _, s in first] == ["a@example.net"]
    rest = list(store.suppressions.listings(db, query._replace(after=first[0][0])))
    assert [(s.address, s.reason, s.created_at) for _, s in rest] == [("b@example.net", "import", T0 - 30 * DAY)]
    assert [s.address for _, s in store.suppressions.listings(db, query._replace(search="B@EX"))] == ["b@example.net"]


def test_the_milter_learns_what_changed_from_the_history(db):
    assert store.suppressions.last_change(db) == 0
    deliver(db, T0, counted("e@example.net"))
    mark = store.suppressions.last_change(db)
    store.suppressions.lift(db, "shop", "e@example.net", T0 + 1, "cli:root", admin=True)
    assert [(a, k) for _, a, k in store.suppressions.changed_since(db, mark)] == [("shop", "e@example.net")]


def test_the_story_of_an_address_tells_what_was_sent_what_came_back_and_what_changed(db):
    sent = store.SentMessage("m1", "tok", "shop", T0 - 60, "4Q1", "<o-1@shop.example.com>", "Your order",
                             "orders@shop.example.com", "", ("Frank@example.net", "other@example.net"))
    store.record_messages(db, [sent])
    (bounce_id,) = deliver(db, T0, counted("frank@example.net"))
    told = store.suppressions.story(db, "shop", "FRANK@example.net")
    assert told["address"] == "FRANK@example.net"
    assert [(s["reason"], s["bounce_ids"]) for s in told["suppressions"]] == [("hard", [bounce_id])]  # type: ignore[attr-defined]
    assert [m["subject"] for m in told["messages"]] == ["Your order"]  # type: ignore[attr-defined]
    assert [(r["id"], r["reason"], r["hard"]) for r in told["records"]] == [(bounce_id, "userunknown", True)]  # type: ignore[attr-defined]
    assert [h["change"] for h in told["history"]] == ["created"]  # type: ignore[attr-defined]
    assert store.suppressions.story(db, "news", "frank@example.net")["messages"] == []
