"""The store's received side: the dedup key, one transaction per delivery, reading by
time and account, retention, and the migration that added it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from bouncefilter import store
from bouncefilter.core.record import BounceRecord

RAW = b"""\
Return-Path: <>
Received: from mx.example.net by mx1.bounces.example.com; Thu, 16 May 2024 06:02:31 +0000
Delivered-To: b+tok@bounces.example.com
From: MAILER-DAEMON@mx.example.net
Subject: Undelivered Mail Returned to Sender
Message-Id: <dsn-1@mx.example.net>

The report.
"""
RCPT = "b+tok@bounces.example.com"


def record(recipient: str = "a@example.net", kind: str = "bounce", **fields: object) -> BounceRecord:
    values: dict[str, object] = {"reason": "userunknown", "hard": True, "status": "5.1.1"}
    values.update(fields)
    return BounceRecord(recipient=recipient, kind=kind, **values)  # type: ignore[arg-type]


def row(recipient: str = "a@example.net", outcome: str = "bounce", **context: object) -> store.Bounce:
    return store.Bounce(record(recipient), outcome, **context)  # type: ignore[arg-type]


def delivery(raw: bytes = RAW, at: float = 1_790_000_000.0, rcpt_to: str = RCPT, **fields: object) -> store.Delivery:
    return store.Delivery(raw, at, rcpt_to=rcpt_to, **fields)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    conn = store.connect(str(tmp_path / "bouncefilter.db"))
    store.migrate(conn)
    return conn


# -- the dedup key -------------------------------------------------------------------------


def test_the_digest_ignores_what_our_own_mx_hosts_add():
    digest = store.message_digest(RAW)
    second_mx = RAW.replace(b"mx1.bounces", b"mx2.bounces").replace(b"\n", b"\r\n")
    with_more_trace = (b"From MAILER-DAEMON Thu May 16 06:02:32 2024\nX-Original-To: b+tok@bounces.example.com\n"
                       b"Authentication-Results: mx2.bounces.example.com; spf=none\n"
                       b"Received: from a\n\tby b; Thu, 16 May 2024 06:02:32 +0000\n" + RAW)
    assert store.message_digest(second_mx) == digest
    assert store.message_digest(with_more_trace) == digest


def test_the_digest_keeps_everything_the_remote_mta_wrote():
    digest = store.message_digest(RAW)
    assert store.message_digest(RAW.replace(b"<dsn-1@", b"<dsn-2@")) != digest
    assert store.message_digest(RAW.replace(b"The report.", b"The report!")) != digest
    # A trace field name in the body is body, not header.
    assert store.message_digest(RAW + b"Received: by nobody\n") != digest


def test_the_key_names_one_recipient_event_of_one_delivery():
    digest = store.message_digest(RAW)
    key = store.dedup_key(digest, RCPT, "a@example.net", "bounce")
    assert key == store.dedup_key(digest, f"<{RCPT.upper()}>", "A@Example.NET", "bounce")
    others = {
        store.dedup_key(digest, RCPT, "b@example.net", "bounce"),
        store.dedup_key(digest, RCPT, "a@example.net", "delay"),
        store.dedup_key(digest, "b+other@bounces.example.com", "a@example.net", "bounce"),
        store.dedup_key(store.message_digest(RAW + b"more\n"), RCPT, "a@example.net", "bounce"),
    }
    assert key not in others and len(others) == 4


# -- storing a delivery ----------------------------------------------------------------------


def test_a_delivery_is_stored_with_its_rows_raw_message_and_outbox(db):
    ids = store.store_delivery(db, delivery(queue_id="4Q1", mail_from=""), [
        row("a@example.net", account="shop", message_key="00ff", bounce_address="b@shop.example.com",
            targets=("smtp:b@shop.example.com", "webhook:1")),
        row("b@example.net", account="shop"),
    ])
    assert ids == [1, 2]
    rows = list(store.bounces(db))
    assert [r["recipient"] for r in rows] == ["a@example.net", "b@example.net"]
    first = rows[0]
    assert (first["outcome"], first["kind"], first["reason"], first["hard"], first["status"]) == \
        ("bounce", "bounce", "userunknown", True, "5.1.1")
    assert (first["account"], first["message_key"], first["bounce_address"]) == ("shop", "00ff", "b@shop.example.com")
    assert (first["queue_id"], first["rcpt_to"], first["received_at"]) == ("4Q1", RCPT, 1_790_000_000.0)
    assert store.raw_message(db, first["raw_id"]) == RAW  # type: ignore[arg-type]
    assert rows[1]["raw_id"] == first["raw_id"]
    assert store.outbox_rows(db, 1) == [("smtp:b@shop.example.com", "pending"), ("webhook:1", "pending")]
    assert store.outbox_rows(db, 2) == []
    assert db.execute("SELECT due_at FROM outbox").fetchall() == [(1_790_000_000.0,)] * 2


def test_a_duplicate_delivery_adds_nothing_not_even_outbox_rows(db):
    store.store_delivery(db, delivery(), [row(targets=("t",))])
    again = RAW.replace(b"mx1.bounces", b"mx2.bounces")
    assert store.store_delivery(db, delivery(again, at=1_790_000_100.0), [row(targets=("t",)), row("new@example.net")]) \
        == [None, 2]
    assert db.execute("SELECT count(*) FROM bounces").fetchone() == (2,)
    assert db.execute("SELECT count(*) FROM raw_messages").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (1,)


def test_a_failure_half_way_stores_nothing_at_all(db):
    bad = store.Bounce(record("b@example.net", diagnostic=["not", "storable"]), "bounce")  # type: ignore[arg-type]
    with pytest.raises(sqlite3.Error):
        store.store_delivery(db, delivery(), [row(targets=("t",)), bad])
    assert not db.in_transaction
    for table in ("bounces", "raw_messages", "outbox"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    assert store.store_delivery(db, delivery(), [row()]) == [1]


def test_text_that_utf8_cannot_hold_is_stored_with_a_stand_in(db):
    store.store_delivery(db, delivery(rcpt_to="b+\udcff@bounces.example.com"), [row("x\udcfe@example.net")])
    (stored,) = store.bounces(db)
    assert (stored["recipient"], stored["rcpt_to"]) == ("x?@example.net", "b+?@bounces.example.com")


def test_a_truncated_message_keeps_its_real_size_and_marks_its_rows(db):
    store.store_delivery(db, delivery(RAW[:100], size=5000, truncated=True), [row()])
    assert db.execute("SELECT size, truncated FROM raw_messages").fetchone() == (5000, 1)
    store.store_delivery(db, delivery(RAW + b"\n"), [row("other@example.net")])
    assert [(r["recipient"], r["truncated"]) for r in store.bounces(db)] == \
        [("a@example.net", True), ("other@example.net", False)]
    assert [json.loads(line)["truncated"] for line in store.export_json(db, store.BounceQuery())] == [True, False]


def test_a_message_with_no_records_is_one_row(db):
    empty = store.Bounce(BounceRecord(recipient="", kind="", reason="", hard=False), "reply", account="shop")
    assert store.store_delivery(db, delivery(), [empty]) == [1]
    assert store.store_delivery(db, delivery(), [empty]) == [None]


# -- reading -------------------------------------------------------------------------------


def test_rows_are_read_by_time_range_and_account(db):
    for n, (account, at) in enumerate([("shop", 100.0), ("news", 200.0), ("shop", 300.0), ("", 400.0)]):
        store.store_delivery(db, delivery(RAW + str(n).encode(), at=at), [row(account=account)])
    assert [r["received_at"] for r in store.bounces(db)] == [100.0, 200.0, 300.0, 400.0]
    assert [r["received_at"] for r in store.bounces(db, since=200.0, until=400.0)] == [200.0, 300.0]
    assert [r["received_at"] for r in store.bounces(db, account="shop")] == [100.0, 300.0]
    assert [r["received_at"] for r in store.bounces(db, since=150.0, account="shop")] == [300.0]
    assert list(store.bounces(db, account="nobody")) == []


def test_the_time_range_reads_use_an_index(db):
    plan = " ".join(str(step[-1]) for step in db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM bounces WHERE account = ? AND received_at >= ? AND received_at < ?",
        ("shop", 0, 1)))
    assert "bounces_account_received" in plan
    plan = " ".join(str(step[-1]) for step in db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM bounces WHERE received_at >= ?", (0,)))
    assert "bounces_received" in plan


# -- retention -----------------------------------------------------------------------------

DAY = 86400.0


def test_purge_keeps_what_is_young_enough(db, monkeypatch):
    monkeypatch.setattr(store, "PURGE_BATCH", 3)  # several batches
    now = 1_790_000_000.0
    for n in range(10):
        store.store_delivery(db, delivery(RAW + str(n).encode(), at=now - n * DAY), [row()])
        store.record_messages(db, (store.SentMessage(f"{n:016x}", "t", "shop", now - n * DAY),))
    purged = store.purge(db, now, days=7, raw_days=2)
    assert purged == store.Purged(bounces=2, raw_messages=7, messages=2)  # raw of days 3 to 9 went
    ages = [(now - float(r["received_at"])) / DAY for r in store.bounces(db)]
    assert ages == [7, 6, 5, 4, 3, 2, 1, 0]
    assert [r["raw_id"] is None for r in store.bounces(db)] == [True] * 5 + [False] * 3
    assert db.execute("SELECT count(*) FROM messages").fetchone() == (8,)
    assert store.purge(db, now, days=7, raw_days=2) == store.Purged()


def test_purge_keeps_a_raw_message_a_pending_forward_needs(db):
    now = 1_790_000_000.0
    store.store_delivery(db, delivery(at=now - 5 * DAY), [row(targets=("smtp:x@example.com",))])
    store.store_delivery(db, delivery(RAW + b"2", at=now - 5 * DAY), [row(targets=("smtp:x@example.com",))])
    db.execute("UPDATE outbox SET state = 'done' WHERE bounce_id = 2")
    assert store.purge(db, now, days=30, raw_days=2).raw_messages == 1
    assert [r["raw_id"] is None for r in store.bounces(db)] == [False, True]
    assert store.purge(db, now, days=1, raw_days=1) == store.Purged(bounces=2, raw_messages=1)
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


# -- the migration -------------------------------------------------------------------------


def test_a_schema_1_database_with_messages_is_brought_forward(tmp_path):
    conn = store.connect(str(tmp_path / "old.db"))
    version, sql = store.MIGRATIONS[0]
    for statement in store.db._statements(sql):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    store.record_messages(conn, (store.SentMessage("00aa", "t", "shop", 1.0, recipients=("a@example.net",)),))
    assert store.migrate(conn) == store.SCHEMA_VERSION
    assert store.sent_message(conn, "00aa") is not None
    assert store.store_delivery(conn, delivery(), [row()]) == [1]


def test_no_migration_statement_hides_a_semicolon_in_a_comment():
    for _, sql in store.MIGRATIONS:
        for line in sql.splitlines():
            assert ";" not in line.partition("--")[2], line


def test_a_schema_2_outbox_row_is_brought_forward_due_and_queued_when_it_was(tmp_path):
    conn = store.connect(str(tmp_path / "old.db"))
    for version, sql in store.MIGRATIONS[:2]:
        for statement in store.db._statements(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {version}")
    conn.execute("INSERT INTO raw_messages (sha256, received_at, size, data) VALUES ('x', 5.0, 1, x'00')")
    conn.execute("INSERT INTO bounces (dedup_key, received_at, outcome, raw_id) VALUES ('k', 5.0, 'bounce', 1)")
    conn.execute("INSERT INTO outbox (bounce_id, target, due_at) VALUES (1, 'shop:smtp:a@example.com', 7.0)")
    assert store.migrate(conn) == store.SCHEMA_VERSION
    (item,) = store.claim_due(conn, "c1", now=10.0, lease=60, limit=10)
    assert (item.target, item.attempts, item.queued_at, item.bounce["id"]) == ("shop:smtp:a@example.com", 1, 7.0, 1)


def test_claims_are_exclusive_until_the_lease_lapses_and_a_lapsed_claim_cannot_settle(db):
    store.store_delivery(db, delivery(at=100.0), [row("a@example.net", targets=("t1", "t2"))])
    first = store.claim_due(db, "c1", now=100.0, lease=60, limit=1)
    second = store.claim_due(db, "c2", now=100.0, lease=60, limit=5)
    assert [i.target for i in first] == ["t1"] and [i.target for i in second] == ["t2"]
    assert store.claim_due(db, "c3", now=159.0, lease=60, limit=5) == []
    assert store.next_due(db) == 160.0
    (retaken,) = store.claim_due(db, "c3", now=161.0, lease=60, limit=1)  # c1 died: its row is due again
    assert (retaken.id, retaken.attempts) == (first[0].id, 2)
    assert store.mark_done(db, first[0].id, "c1", 162.0) is False  # the lapsed claim lost it
    assert store.mark_done(db, first[0].id, "c3", 162.0) is True
    assert store.mark_dead(db, second[0].id, "c2", "HTTP 410 Gone") is True
    assert dict(db.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()) == {"done": 1, "dead": 1}
    assert [r["last_error"] for r in store.dead_letters(db)] == ["HTTP 410 Gone"]
    assert store.retry_dead(db, 200.0, 999) == 0 and store.retry_dead(db, 200.0) == 1
    assert store.next_due(db) == 200.0


def test_purge_keeps_a_raw_message_a_row_being_sent_needs(db):
    now = 1_790_000_000.0
    store.store_delivery(db, delivery(at=now - 5 * DAY), [row(targets=("shop:smtp:x@example.com",))])
    store.claim_due(db, "c1", now, lease=60, limit=1)
    assert store.purge(db, now, days=30, raw_days=2).raw_messages == 0
