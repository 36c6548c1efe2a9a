"""The SQLite store: schema versions, migrations, and many writers at once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from bouncefilter import store


def sent(key: str, **fields: object) -> store.SentMessage:
    values: dict[str, object] = {"token": f"token{key}", "account": "shop", "sent_at": 1_790_000_000.0}
    values.update(fields)
    return store.SentMessage(message_key=key, **values)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    conn = store.connect(str(tmp_path / "bouncefilter.db"))
    store.migrate(conn)
    return conn


def test_a_new_database_is_migrated_to_the_current_schema_in_wal_mode(db):
    assert store.version(db) == store.SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_a_recorded_message_reads_back_whole(db):
    message = sent("00ff", queue_id="4XyZ1", message_id="<m1@shop.example.com>", subject="Your order",
                   sender="orders@shop.example.com", bounce_address="bounces@shop.example.com",
                   recipients=("a@example.net", "b@example.org"))
    store.record_messages(db, (message,))
    assert store.sent_message(db, "00ff") == message
    assert store.sent_message(db, "0000") is None


def test_recording_the_same_message_twice_keeps_one_row(db):
    store.record_messages(db, (sent("00aa"),))
    store.record_messages(db, (sent("00aa", subject="changed"),))
    assert db.execute("SELECT count(*), max(subject) FROM messages").fetchone() == (1, "")


def test_many_messages_are_recorded_in_statements_of_many_rows_and_a_repeated_key_keeps_its_first(db):
    count = store.MESSAGE_ROWS * 2 + 7  # three statements, the last one short
    messages = [sent(f"{n:04x}", subject=f"order {n}", recipients=(f"r{n}@example.net",)) for n in range(count)]
    store.record_messages(db, (sent("0001", subject="stored earlier"),))
    store.record_messages(db, [*messages, sent("0002", subject="repeated in the batch")])
    assert db.execute("SELECT count(*) FROM messages").fetchone() == (count,)
    assert store.sent_message(db, "0001").subject == "stored earlier"
    assert store.sent_message(db, "0002").subject == "order 2"
    assert store.sent_message(db, f"{count - 1:04x}") == messages[-1]


def test_a_database_newer_than_the_program_is_refused(db):
    db.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    with pytest.raises(store.StoreError, match="newer"):
        store.ensure_schema(db, auto_migrate=True)
    with pytest.raises(store.StoreError, match="newer"):
        store.migrate(db)


def test_an_older_database_is_migrated_only_when_allowed(tmp_path):
    conn = store.connect(str(tmp_path / "old.db"))
    with pytest.raises(store.StoreError, match="bouncefilter db migrate"):
        store.ensure_schema(conn, auto_migrate=False)
    store.ensure_schema(conn, auto_migrate=True)
    assert store.version(conn) == store.SCHEMA_VERSION


def test_many_threads_with_their_own_connections_all_get_their_rows_in(tmp_path):
    path = str(tmp_path / "busy.db")
    store.migrate(store.connect(path))
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        conn = store.connect(path)
        try:
            for i in range(50):
                store.record_messages(conn, (sent(f"{n:04x}{i:04x}"),))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.connect(path).execute("SELECT count(*) FROM messages").fetchone()[0] == 400
