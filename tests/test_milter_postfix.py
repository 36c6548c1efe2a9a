"""``bouncefilter milter`` behind a real Postfix (the lab), judged by what the peer receives.

The milter runs as its own process from this interpreter's environment, on a unix socket
in the lab, with a configuration written here: one account with tracking on
(``shop.example.test``), one with tracking off (``plain.example.test``). Mail goes in
through the lab's submission port; the accepting smtp-sink shows the envelope and the
headers that left Postfix, and the database shows what the milter recorded.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bouncefilter.classify.pipeline import classify
from bouncefilter.core.record import TRACKING_HEADER

from support.bouncefilter_lab import MilterProcess, write_config
from support.postfix_lab import BOUNCE_DOMAIN, PostfixLab, SinkMessage, free_ports, make_message, unix_listening

pytestmark = pytest.mark.postfix

SHOP = "orders@shop.example.test"
PLAIN = "news@plain.example.test"
VERP = re.compile(rf"b\+([a-z2-7]+)@{re.escape(BOUNCE_DOMAIN)}")


@pytest.fixture(scope="module", params=[("unix", "asyncio"), ("inet", "asyncio"), ("unix", "libmilter")],
                ids=lambda p: "-".join(p))
def milter(request: pytest.FixtureRequest, postfix_lab: PostfixLab) -> Iterator[MilterProcess]:
    """``bouncefilter milter`` in the lab, on each kind of socket and with each engine:
    shop.example.test tracked, plain.example.test not."""
    pytest.importorskip("Milter", reason="pymilter is not installed in this interpreter (make test puts it in .venv)")
    kind, engine = request.param
    folder = postfix_lab.root / f"milter-{kind}-{engine}"
    folder.mkdir(mode=0o755, exist_ok=True)
    config = write_config(folder / "bouncefilter.yaml", {"shop.example.test": True, "plain.example.test": False},
                          engine=engine)
    where: Path | int = postfix_lab.run_dir / "milter.sock" if kind == "unix" else free_ports(1)[0]
    process = MilterProcess(config, where, folder / "milter.log").start()
    try:
        yield process
    finally:
        code = process.stop()
    assert code == 0, f"the milter exited {code} on SIGTERM:\n{process.log.read_text()}"


@pytest.fixture
def lab(postfix_lab: PostfixLab, milter: MilterProcess) -> PostfixLab:
    """The lab, emptied, with the milter on its submission port (contrib/postfix's setup)."""
    postfix_lab.reset(milter=milter.postfix_spec, keep_return_path=True)
    return postfix_lab


def test_tracked_mail_leaves_with_a_signed_verp_sender_the_header_and_a_record(lab: PostfixLab, milter: MilterProcess):
    message = make_message(SHOP, "ann@dest.example.test", "Your order 1001",
                           headers=[("Return-Path", "<returns@shop.example.test>")])
    queue_id = lab.send(message, SHOP, ["ann@dest.example.test", "bob@dest.example.test"])

    (saved,) = lab.wait_sink()
    token = _verp_token(saved.sender)
    assert _decode(milter, saved.sender).startswith("valid message_key=")
    assert _headers(saved, TRACKING_HEADER) == [token]
    assert _headers(saved, "Return-Path") == []
    assert saved.recipients == ("ann@dest.example.test", "bob@dest.example.test")
    row = _row(milter, token)
    assert row["account"] == "shop"
    assert row["queue_id"] == queue_id
    assert row["sender"] == SHOP
    assert row["bounce_address"] == "returns@shop.example.test"
    assert row["subject"] == "Your order 1001"
    assert row["message_id"] == _headers(saved, "Message-ID")[0]
    assert json.loads(row["recipients"]) == ["ann@dest.example.test", "bob@dest.example.test"]
    assert row["message_key"] == _decode(milter, token).split("message_key=")[1].split()[0]


def test_untracked_mail_takes_its_return_path_header_as_envelope_sender(lab: PostfixLab, milter: MilterProcess):
    message = make_message(PLAIN, "ann@dest.example.test", headers=[("Return-Path", "<bounces@plain.example.test>")])
    lab.send(message, PLAIN, ["ann@dest.example.test"])

    (saved,) = lab.wait_sink()
    assert saved.sender == "bounces@plain.example.test"
    assert _headers(saved, "Return-Path") == []
    assert _headers(saved, TRACKING_HEADER) == []
    assert _rows(milter, "SELECT count(*) FROM messages WHERE account = 'plain'") == [(0,)]


@pytest.mark.parametrize("tracking", [True, False], ids=["tracking", "no-tracking"])
def test_without_contribs_cleanup_postfix_drops_return_path_before_the_milter(
    postfix_lab: PostfixLab, milter: MilterProcess, tracking: bool
):
    # Postfix's default message_drop_headers: the milter never sees the header, so it
    # can neither record it nor make it the envelope sender; it is gone all the same.
    postfix_lab.reset(milter=milter.postfix_spec, keep_return_path=False)
    sender = SHOP if tracking else PLAIN
    subject = f"Dropped Return-Path ({'tracking' if tracking else 'no tracking'})"
    message = make_message(sender, "ann@dest.example.test", subject, headers=[("Return-Path", "<elsewhere@example.net>")])
    postfix_lab.send(message, sender, ["ann@dest.example.test"])

    (saved,) = postfix_lab.wait_sink()
    assert _headers(saved, "Return-Path") == []
    if tracking:
        row = _row(milter, _verp_token(saved.sender))
        assert (row["subject"], row["bounce_address"]) == (subject, "")
    else:
        assert saved.sender == PLAIN


@pytest.mark.parametrize("sender", ["", f"b+alreadyverp@{BOUNCE_DOMAIN}", "someone@unknown.example.test"],
                         ids=["null-sender", "verp-sender", "no-account"])
def test_mail_the_milter_must_not_touch_passes_unchanged(lab: PostfixLab, sender: str):
    message = make_message("someone@example.net", "ann@dest.example.test", headers=[("Return-Path", "<keep@example.net>")])
    lab.send(message, sender, ["ann@dest.example.test"])

    (saved,) = lab.wait_sink()
    assert saved.sender == sender
    assert _headers(saved, TRACKING_HEADER) == []
    assert _headers(saved, "Return-Path") == ["<keep@example.net>"]  # kept: not ours to remove


def test_a_hard_bounce_of_tracked_mail_returns_to_its_verp_address(lab: PostfixLab, milter: MilterProcess):
    message = make_message(SHOP, "gone@bad.example.test", "Tracked and bounced")
    lab.send(message, SHOP, ["gone@bad.example.test"])

    (dsn,) = lab.wait_deliveries()
    token = _verp_token(dsn.recipient)
    assert dsn.sender == ""
    assert _row(milter, token)["recipients"] == '["gone@bad.example.test"]'
    verdict = classify(dsn.message)
    assert verdict.original.token == token
    (record,) = verdict.records
    assert (record.recipient, record.reason, record.hard, record.status) == ("gone@bad.example.test", "userunknown", True, "5.1.1")


def test_a_milter_started_over_a_stale_socket_file_listens_when_start_returns(postfix_lab: PostfixLab, tmp_path: Path):
    pytest.importorskip("Milter", reason="pymilter is not installed in this interpreter")
    path = postfix_lab.run_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))  # the file stays; nothing listens on it
    config = write_config(tmp_path / "bouncefilter.yaml", {"shop.example.test": True})
    process = MilterProcess(config, path, tmp_path / "milter.log").start()
    try:
        assert unix_listening(path)
    finally:
        assert process.process is not None
        process.process.kill()  # not under test here, and SIGKILL is instant
        process.stop()
        path.unlink(missing_ok=True)


# -- helpers ------------------------------------------------------------------------------


def _verp_token(address: str) -> str:
    match = VERP.fullmatch(address)
    assert match, f"not a VERP address of the lab: {address!r}"
    return match.group(1)


def _decode(milter: MilterProcess, address: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bouncefilter", "verp", "decode", "--config", str(milter.config), address],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def _headers(saved: SinkMessage, name: str) -> list[str]:
    """The values of the header ``name`` in the top header block, unfolded."""
    head = saved.message.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    unfolded = re.sub(r"\n[ \t]+", " ", head)
    prefix = name.lower() + ":"
    return [line[len(prefix):].strip() for line in unfolded.split("\n") if line.lower().startswith(prefix)]


def _rows(milter: MilterProcess, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(_database(milter)) as conn:
        return conn.execute(sql, args).fetchall()


def _row(milter: MilterProcess, token: str, timeout: float = 5.0) -> sqlite3.Row:
    """The message's row, waiting for the milter's writer (it writes every 100 ms)."""
    conn = sqlite3.connect(_database(milter))
    deadline = time.monotonic() + timeout
    try:
        conn.row_factory = sqlite3.Row
        while (row := conn.execute("SELECT * FROM messages WHERE token = ?", (token,)).fetchone()) is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    finally:
        conn.close()
    assert row is not None, f"no messages row for token {token}"
    return row


def _database(milter: MilterProcess) -> Path:
    return milter.config.parent / "bouncefilter.db"
