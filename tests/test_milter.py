"""The outbound milter: every branch in process (Milter.testctx), then the daemon on a socket.

The in-process tests drive the callbacks as libmilter would and record the actions the
milter asks for. The daemon tests run ``bouncefilter milter`` and speak the milter
protocol to it with a small client (:class:`WireClient`), so negotiation, the socket's
permissions and the stop on SIGTERM are tested without an MTA.
"""

from __future__ import annotations

import grp
import io
import json
import os
import resource
import signal
import socket
import sqlite3
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import Milter
import Milter.testctx
import pytest

from bouncefilter import store
from bouncefilter.config import Account, MilterSettings, Settings, VerpSettings
from bouncefilter.core import accounts, verp
from bouncefilter.core.address import bare_address
from bouncefilter.core.record import TRACKING_HEADER
from bouncefilter.milter import decision, handler
from bouncefilter.milter import engine as milterserver
from bouncefilter.milter import service as bfmilter
from bouncefilter.milter import wire as milterwire
from bouncefilter.milter.decision import Policy
from bouncefilter.milter.handler import AnsweringMilter, InFlight, OutboundMilter, QuietMilter
from bouncefilter.milter.recorder import Recorder

from support.milter_client import PostfixClient, WireClient

KEY = "0123456789abcdef0123456789abcdef"
OLD_KEY = "fedcba9876543210fedcba9876543210"
VERP_DOMAIN = "bounces.example.com"
SHOP = Account(name="shop", sasl_users=("shop-mailer",), senders=("orders@shop.example.com",),
               domains=("shop.example.com",))
NEWS = Account(name="news", sasl_users=("news-mailer",), domains=("news.example.org",), tracking=False)
ACCOUNTS = (SHOP, NEWS)
GOING = (Milter.CONTINUE, Milter.NOREPLY)
QUEUE_ID = "4Q7RZ1X2Y3"
HEADERS = (
    ("From", "Shop <orders@shop.example.com>"),
    ("To", "Alice <alice@example.net>"),
    ("Subject", "Your order 1234"),
    ("Message-ID", "<order-1234@shop.example.com>"),
)


def today() -> Any:
    return datetime.now(timezone.utc).date()


class Ctx(Milter.testctx.TestCtx):  # type: ignore[misc]
    """A TestCtx that records, in order, the actions the milter asks for (only at end of message)."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: list[tuple[Any, ...]] = []

    def _action(self, *action: Any) -> None:
        assert self._stage == Milter.M_EOM, f"{action[0]} outside end of message"
        self.actions.append(action)

    def chgfrom(self, sender: str, params: str | None = None) -> None:
        self._action("chgfrom", sender, params)

    def addheader(self, field: str, value: str, idx: int) -> None:
        self._action("addheader", field, value)

    def chgheader(self, field: str, idx: int, value: str | None) -> None:
        self._action("chgheader", field, idx, value)


class Harness:
    """Builds milters the way ``bouncefilter milter`` does, around a migrated database."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.database = str(tmp_path / "bouncefilter.db")
        self.monkeypatch = monkeypatch
        self.flight = InFlight()
        self.recorders: list[Recorder] = []
        conn = store.connect(self.database)
        store.migrate(conn)
        conn.close()

    def ctx(self, cls: type[OutboundMilter] = QuietMilter, database: str | None = None, **policy: Any) -> Ctx:
        """A new connection to a milter of class ``cls``, negotiated."""
        settings = {"verp_domain": VERP_DOMAIN, "prefix": "b", "signing_key": KEY.encode(), **policy}
        built = Policy(accounts=ACCOUNTS, **settings)
        recorder = Recorder(database or self.database)
        self.recorders.append(recorder)
        self.monkeypatch.setattr(Milter, "factory", lambda: cls(built, recorder, self.flight))
        # TestCtx negotiates on a list it shares between instances: give each its own.
        self.monkeypatch.setattr(Milter.testctx.TestCtx, "default_opts", [Milter.CURR_ACTS, 0x1FFFFF, 0, 0])
        ctx = Ctx()
        assert ctx._connect() == Milter.CONTINUE
        return ctx

    def flush(self) -> None:
        """Wait for every recorder to write what it was given."""
        for recorder in self.recorders:
            recorder.flush()

    def rows(self) -> list[store.SentMessage]:
        self.flush()
        conn = sqlite3.connect(self.database)
        keys = [key for (key,) in conn.execute("SELECT message_key FROM messages ORDER BY sent_at")]
        conn.close()
        conn = store.connect(self.database)
        found = [store.sent_message(conn, key) for key in keys]
        conn.close()
        return [row for row in found if row is not None]


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    return Harness(tmp_path, monkeypatch)


def wire(value: str) -> str:
    """A header value as pymilter hands it over: UTF-8 bytes, undecodable ones escaped."""
    return value.encode("utf-8").decode("ascii", "surrogateescape")


def send(ctx: Ctx, sender: str, rcpts: Sequence[str] = ("<alice@example.net>",),
         headers: Sequence[tuple[str, str]] = HEADERS, esmtp: Sequence[str] = ("SIZE=512",),
         login: str = "", queue_id: str = QUEUE_ID) -> int:
    """Drive one message through the callbacks; the milter's reply to MAIL FROM or to end of message."""
    ctx._setsymval("{auth_authen}", login)
    ctx._setsymval("i", "")
    rc = ctx._envfrom(sender, *esmtp)
    if rc not in GOING:
        return int(rc)
    for rcpt in rcpts:
        assert ctx._envrcpt(rcpt) in GOING
    assert ctx._data() in GOING
    for name, value in headers:
        assert ctx._header(name, wire(value)) in GOING
    assert ctx._eoh() in GOING
    assert ctx._feed_body(io.BytesIO(b"Hello.\r\n")) in GOING
    ctx._setsymval("i", queue_id)  # Postfix names the queue file by end of message
    return int(ctx._eom())


def verp_of(ctx: Ctx) -> tuple[str, str | None]:
    """The new envelope sender (without brackets) and the ESMTP parameters of the one chgfrom."""
    (action,) = [a for a in ctx.actions if a[0] == "chgfrom"]
    return action[1].strip("<>"), action[2]


# -- tracking on ----------------------------------------------------------------------


def test_tracked_mail_gets_a_signed_verp_sender_a_tracking_header_and_a_record(harness):
    ctx = harness.ctx()
    assert send(ctx, "<orders@shop.example.com>", ["<alice@example.net>", "<bob@example.org>"]) == Milter.CONTINUE
    address, params = verp_of(ctx)
    verdict = verp.decode(address, "b", VERP_DOMAIN, [KEY.encode()], today(), 60)
    assert verdict.valid and verdict.issued == today()
    assert address == f"b+{verdict.token}@{VERP_DOMAIN}"
    assert params == f"ENVID={verdict.token}"
    assert ctx.actions == [("chgfrom", f"<{address}>", params), ("addheader", TRACKING_HEADER, verdict.token)]
    (row,) = harness.rows()
    assert row.message_key == verdict.message_key and row.token == verdict.token
    assert (row.account, row.queue_id, row.sender) == ("shop", QUEUE_ID, "orders@shop.example.com")
    assert (row.message_id, row.subject) == ("<order-1234@shop.example.com>", "Your order 1234")
    assert row.recipients == ("alice@example.net", "bob@example.org")
    assert row.bounce_address == ""
    assert abs(row.sent_at - time.time()) < 60
    assert harness.flight.wait(0) == 0


def test_every_message_gets_its_own_token(harness):
    ctx = harness.ctx()
    for _ in range(3):
        assert send(ctx, "<orders@shop.example.com>") == Milter.CONTINUE
    tokens = [a[2] for a in ctx.actions if a[0] == "addheader"]
    assert len(set(tokens)) == 3
    assert sorted(row.token for row in harness.rows()) == sorted(tokens)


def test_a_submitted_return_path_is_recorded_as_the_bounce_address_and_removed(harness):
    ctx = harness.ctx()
    headers = (("Return-Path", "<Returns@Shop.Example.COM>"), *HEADERS)
    assert send(ctx, "<orders@shop.example.com>", headers=headers) == Milter.CONTINUE
    address, _ = verp_of(ctx)
    assert address.endswith("@" + VERP_DOMAIN)
    assert ctx.actions[1][:2] == ("addheader", TRACKING_HEADER)
    assert ctx.actions[2:] == [("chgheader", "Return-Path", 1, None)]
    (row,) = harness.rows()
    assert row.bounce_address == "Returns@shop.example.com"


def test_several_return_paths_are_all_removed_last_first_and_the_first_address_counts(harness):
    ctx = harness.ctx()
    headers = (("Return-Path", "<>"), ("Return-Path", "<first@example.org>"), *HEADERS,
               ("Return-Path", "second@example.org"))
    assert send(ctx, "<orders@shop.example.com>", headers=headers) == Milter.CONTINUE
    assert [a for a in ctx.actions if a[0] == "chgheader"] == [
        ("chgheader", "Return-Path", 3, None), ("chgheader", "Return-Path", 2, None),
        ("chgheader", "Return-Path", 1, None)]
    assert harness.rows()[0].bounce_address == "first@example.org"


def test_the_clients_envelope_id_and_ret_are_kept(harness):
    ctx = harness.ctx()
    assert send(ctx, "<orders@shop.example.com>", esmtp=("SIZE=900", "RET=HDRS", "ENVID=order-1234")) == Milter.CONTINUE
    assert verp_of(ctx)[1] == "RET=HDRS ENVID=order-1234"


def test_envid_can_be_turned_off(harness):
    ctx = harness.ctx(envid=False)
    assert send(ctx, "<orders@shop.example.com>", esmtp=("SIZE=900", "BODY=8BITMIME")) == Milter.CONTINUE
    assert verp_of(ctx)[1] is None


def test_the_queue_id_from_mail_from_serves_when_end_of_message_has_none(harness):
    ctx = harness.ctx()
    ctx._setsymval("i", "EARLY1")
    assert ctx._envfrom("<orders@shop.example.com>") in GOING
    assert ctx._envrcpt("<alice@example.net>") in GOING
    ctx._setsymval("i", None)
    assert ctx._eom() == Milter.CONTINUE
    assert harness.rows()[0].queue_id == "EARLY1"


def test_encoded_and_undecodable_header_values_are_stored_as_text(harness):
    ctx = harness.ctx()
    headers = (("Subject", "=?UTF-8?B?w5xiZXJ3ZWlzdW5n?= f\u00fcr Sie"), ("Message-ID", "<x\udcff@example.com>"))
    ctx._setsymval("i", QUEUE_ID)
    assert ctx._envfrom("<orders@shop.example.com>") in GOING
    for name, value in headers:
        assert ctx._header(name, value.encode("utf-8", "surrogateescape").decode("ascii", "surrogateescape")) in GOING
    assert ctx._envrcpt("<b\udcfcb@example.org>") in GOING
    assert ctx._eom() == Milter.CONTINUE
    (row,) = harness.rows()
    assert row.subject == "\u00dcberweisung f\u00fcr Sie"
    assert row.message_id.startswith("<x") and "\udcff" not in row.message_id
    assert row.recipients == ("b\ufffdb@example.org",)


# -- tracking off ---------------------------------------------------------------------


def test_untracked_mail_without_return_path_is_left_alone(harness):
    ctx = harness.ctx()
    assert send(ctx, "<letters@news.example.org>") == Milter.CONTINUE
    assert ctx.actions == []
    assert harness.rows() == []


def test_untracked_mail_takes_its_return_path_as_envelope_sender(harness):
    ctx = harness.ctx()
    headers = (*HEADERS, ("Return-Path", " <bounces@news.example.org> "))
    assert send(ctx, "<letters@news.example.org>", headers=headers, esmtp=("RET=FULL", "SIZE=1")) == Milter.CONTINUE
    assert ctx.actions == [("chgfrom", "<bounces@news.example.org>", "RET=FULL"),
                           ("chgheader", "Return-Path", 1, None)]
    assert harness.rows() == []


def test_untracked_mail_whose_return_path_is_its_sender_only_loses_the_header(harness):
    ctx = harness.ctx()
    headers = (("Return-Path", "<Letters@news.example.org>"), *HEADERS)
    assert send(ctx, "<letters@news.example.org>", headers=headers) == Milter.CONTINUE
    assert ctx.actions == [("chgheader", "Return-Path", 1, None)]


def test_an_empty_return_path_changes_no_sender(harness):
    ctx = harness.ctx()
    assert send(ctx, "<letters@news.example.org>", headers=(("Return-Path", "<>"),)) == Milter.CONTINUE
    assert ctx.actions == [("chgheader", "Return-Path", 1, None)]


# -- mail the milter leaves alone -------------------------------------------------------


@pytest.mark.parametrize(
    "sender",
    [
        "<>",  # bounces and other null-sender mail
        f"<b+aeasgrlhrgv4332rc2w5kqiav5fkkli@{VERP_DOMAIN}>",  # already VERP
        "<postmaster@BOUNCES.example.com>",  # anything in the VERP domain
        "<someone@example.net>",  # no account
    ],
)
@pytest.mark.parametrize(("cls", "reply"), [(QuietMilter, Milter.CONTINUE), (AnsweringMilter, Milter.ACCEPT)])
def test_mail_that_is_not_ours_to_change_is_let_through_untouched(harness, sender, cls, reply):
    # Accepted at MAIL FROM when that step is answered, else unchanged at end of message.
    ctx = harness.ctx(cls)
    assert send(ctx, sender, headers=(("Return-Path", "<x@example.org>"),)) == reply
    assert ctx.actions == [] and harness.rows() == []
    assert harness.flight.wait(0) == 0


def test_a_sasl_login_decides_the_account_over_the_sender_domain(harness):
    ctx = harness.ctx()
    headers = (("Return-Path", "<bounces@news.example.org>"),)
    # The login belongs to the untracked account although the sender is the shop's.
    assert send(ctx, "<orders@shop.example.com>", headers=headers, login="news-mailer") == Milter.CONTINUE
    assert ctx.actions[0] == ("chgfrom", "<bounces@news.example.org>", None)
    assert harness.rows() == []
    # And a login makes mail from an address no account lists tracked.
    assert send(ctx, "<someone@example.net>", login="shop-mailer") == Milter.CONTINUE
    assert harness.rows()[0].account == "shop"


# -- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["no folder", "not migrated"])
def test_mail_flows_with_its_verp_sender_when_the_database_is_unavailable(harness, tmp_path, caplog, where):
    database = str(tmp_path / "missing" / "b.db") if where == "no folder" else str(tmp_path / "empty.db")
    ctx = harness.ctx(database=database)
    assert send(ctx, "<orders@shop.example.com>") == Milter.CONTINUE
    harness.flush()
    address, _ = verp_of(ctx)
    token = bare_address(address).partition("+")[2].partition("@")[0]
    assert ctx.actions[1] == ("addheader", TRACKING_HEADER, token)
    assert f"database {database}: 1 sent messages not recorded yet, trying again" in caplog.text
    for recorder in harness.recorders:
        recorder.close()  # kept for a retry until the milter stops: only then is it lost
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert error.getMessage() == (f"{QUEUE_ID}: not recorded (token {token}): database {database}: "
                                  "still unwritten when the milter stopped")


def break_token(*args: Any) -> str:
    raise RuntimeError("broken on purpose")


@pytest.mark.parametrize(("on_error", "expected"), [("accept", Milter.ACCEPT), ("tempfail", Milter.TEMPFAIL)])
def test_an_exception_at_end_of_message_follows_on_error(harness, monkeypatch, caplog, on_error, expected):
    ctx = harness.ctx(on_error=on_error)
    monkeypatch.setattr(verp, "make_token", break_token)
    assert send(ctx, "<orders@shop.example.com>") == expected
    assert ctx.actions == [] and harness.rows() == []
    assert ctx._reply == (("451", "4.3.0", handler.TEMPFAIL_REPLY[2]) if on_error == "tempfail" else None)
    assert "broken on purpose" in caplog.text and f"{QUEUE_ID}: failed" in caplog.text
    assert harness.flight.wait(0) == 0
    # The connection goes on: the next message is tracked as usual.
    monkeypatch.undo()
    harness.monkeypatch.setattr(Milter, "factory", Milter.factory)
    assert send(ctx, "<orders@shop.example.com>") == Milter.CONTINUE
    assert len(harness.rows()) == 1


@pytest.mark.parametrize("cls", [QuietMilter, AnsweringMilter])
@pytest.mark.parametrize(("on_error", "expected"), [("accept", Milter.ACCEPT), ("tempfail", Milter.TEMPFAIL)])
def test_an_exception_in_a_header_step_is_applied_at_end_of_message(harness, monkeypatch, caplog, cls, on_error,
                                                                   expected):
    ctx = harness.ctx(cls, on_error=on_error)
    monkeypatch.setattr(decision.Message, "read_header", break_token)
    assert send(ctx, "<orders@shop.example.com>", headers=(("Return-Path", "<x@example.org>"),)) == expected
    assert ctx.actions == [] and harness.rows() == []
    assert "header Return-Path failed" in caplog.text


@pytest.mark.parametrize(("on_error", "expected"), [("accept", Milter.ACCEPT), ("tempfail", Milter.TEMPFAIL)])
def test_an_exception_at_mail_from_follows_on_error(harness, monkeypatch, caplog, on_error, expected):
    ctx = harness.ctx(on_error=on_error)
    monkeypatch.setattr(accounts, "match", break_token)
    assert send(ctx, "<orders@shop.example.com>") == expected
    assert ctx.actions == [] and "MAIL FROM <orders@shop.example.com>: failed" in caplog.text
    assert harness.flight.wait(0) == 0


# -- protocol -------------------------------------------------------------------------------


def test_the_milter_asks_only_for_the_actions_and_macros_it_uses(harness):
    ctx = harness.ctx()
    assert ctx._opts[0] == handler.ACTIONS == (Milter.CHGFROM | Milter.ADDHDRS | Milter.CHGHDRS | Milter.DELRCPT
                                               | Milter.SETSYMLIST)
    assert ctx._symlist[Milter.M_ENVFROM] == {b"{auth_authen}", b"i"} and ctx._symlist[Milter.M_EOM] == {b"i"}


@pytest.mark.parametrize(
    ("cls", "steps", "without_reply"),
    [
        (QuietMilter, {"MAIL", "RCPT", "HEADER"}, {"MAIL", "RCPT", "HEADER"}),
        (AnsweringMilter, {"MAIL", "RCPT", "DATA", "HEADER"}, set()),
    ],
)
def test_which_steps_the_milter_takes_and_which_it_answers(harness, cls, steps, without_reply):
    protocol = harness.ctx(cls)._opts[1]
    skipped = {"CONNECT": Milter.P_NOCONNECT, "HELO": Milter.P_NOHELO, "MAIL": Milter.P_NOMAIL,
               "RCPT": Milter.P_NORCPT, "DATA": Milter.P_NODATA, "HEADER": Milter.P_NOHDRS,
               "EOH": Milter.P_NOEOH, "BODY": Milter.P_NOBODY}
    quiet = {"RCPT": Milter.P_NR_RCPT, "HEADER": Milter.P_NR_HDR, "DATA": Milter.P_NR_DATA, "MAIL": Milter.P_NR_MAIL}
    assert {step for step, bit in skipped.items() if not protocol & bit} == steps
    assert {step for step, bit in quiet.items() if protocol & bit} == without_reply


def test_only_libmilter_on_tcp_answers_every_step():
    assert handler.milter_class("unix:/run/bouncefilter/milter.sock") is QuietMilter
    assert handler.milter_class("inet:8891@127.0.0.1") is QuietMilter
    assert handler.milter_class("local:/run/m.sock", "libmilter") is QuietMilter
    assert handler.milter_class("inet:8891@127.0.0.1", "libmilter") is AnsweringMilter
    assert handler.milter_class("inet6:8891@[::1]", "libmilter") is AnsweringMilter


def test_an_aborted_message_is_no_longer_in_flight_and_the_next_one_starts_clean(harness):
    ctx = harness.ctx()
    assert ctx._envfrom("<orders@shop.example.com>") in GOING
    assert ctx._envrcpt("<first@example.net>") in GOING
    assert harness.flight.wait(0) == 1
    ctx._priv.abort()
    assert harness.flight.wait(0) == 0
    assert send(ctx, "<orders@shop.example.com>", ["<second@example.net>"]) == Milter.CONTINUE
    assert harness.rows()[0].recipients == ("second@example.net",)
    assert ctx._envfrom("<orders@shop.example.com>") in GOING
    ctx._close()
    assert harness.flight.wait(0) == 0


@pytest.mark.parametrize(("on_error", "expected"), [("accept", Milter.ACCEPT), ("tempfail", Milter.TEMPFAIL)])
def test_once_stopping_a_new_message_goes_as_on_error_says(harness, on_error, expected):
    ctx = harness.ctx(on_error=on_error)
    assert ctx._envfrom("<orders@shop.example.com>") in GOING
    harness.flight.close()
    other = harness.ctx(on_error=on_error)
    assert send(other, "<orders@shop.example.com>") == expected
    assert harness.flight.wait(0) == 1  # the first one may still finish
    assert ctx._envrcpt("<alice@example.net>") in GOING
    assert ctx._eom() == Milter.CONTINUE
    assert harness.flight.wait(0) == 0 and len(harness.rows()) == 1


def test_the_recorder_takes_many_threads_at_once_and_writes_all_before_it_closes(harness):
    recorder = Recorder(harness.database)

    def write(thread: int) -> None:
        for number in range(25):
            sent = store.SentMessage(f"{thread:08x}{number:08x}", "t", "shop", time.time(), recipients=("a@example.net",))
            recorder.record(sent)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.close()
    assert len(harness.rows()) == 200


def test_a_database_locked_past_the_busy_timeout_delays_the_records_and_loses_none(harness, caplog):
    recorder = Recorder(harness.database, busy_timeout_ms=100, retry=0.2)
    locker = sqlite3.connect(harness.database, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another writer holds the database, far past the busy timeout
    for number in range(50):
        recorder.record(store.SentMessage(f"{number:016x}", f"t{number}", "shop", time.time(), queue_id=f"4Q{number}"))
    time.sleep(1.2)
    assert "50 sent messages not recorded yet, trying again in 0.2 s" in caplog.text
    locker.execute("ROLLBACK")
    locker.close()
    recorder.close()
    assert len(harness.rows()) == 50
    assert "not recorded (token" not in caplog.text


def test_what_is_still_unwritten_when_the_milter_stops_is_logged_message_by_message(harness, caplog):
    recorder = Recorder(harness.database, busy_timeout_ms=50, retry=0.1)
    locker = sqlite3.connect(harness.database, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    recorder.record(store.SentMessage("00000000000000aa", "tokA", "shop", time.time(), queue_id="4QSTOP"))
    time.sleep(0.3)
    recorder.close()
    locker.execute("ROLLBACK")
    assert "4QSTOP: not recorded (token tokA)" in caplog.text and "still unwritten when the milter stopped" in caplog.text


def test_a_full_write_queue_loses_the_record_not_the_mail(tmp_path, caplog):
    recorder = Recorder(str(tmp_path / "b.db"), max_queue=1)
    recorder.close()  # the writer stops; nothing drains the queue now
    recorder.record(store.SentMessage("00000000000000fe", "first", "shop", time.time()))  # fills the queue
    sent = store.SentMessage("00000000000000ff", "tok", "shop", time.time(), queue_id="4QFULL")
    recorder.record(sent)
    assert "4QFULL: not recorded (token tok)" in caplog.text and "the write queue is full" in caplog.text


def test_prepare_database_migrates_only_when_allowed(tmp_path, caplog):
    assert not bfmilter.prepare_database(str(tmp_path / "new.db"), auto_migrate=False)
    assert "run 'bouncefilter db migrate'" in caplog.text
    assert bfmilter.prepare_database(str(tmp_path / "new.db"), auto_migrate=True)
    conn = store.connect(str(tmp_path / "new.db"))
    assert store.version(conn) == store.SCHEMA_VERSION
    conn.close()
    assert not bfmilter.prepare_database(str(tmp_path / "missing" / "x.db"), auto_migrate=True)


def test_the_policy_for_the_settings_signs_with_the_first_key():
    settings = Settings(verp=VerpSettings(domain=VERP_DOMAIN, prefix="bf", keys=(KEY, OLD_KEY)),
                        milter=MilterSettings(on_error="tempfail", envid=False), accounts=ACCOUNTS)
    policy = bfmilter.policy_for(settings)
    assert (policy.verp_domain, policy.prefix, policy.signing_key) == (VERP_DOMAIN, "bf", KEY.encode())
    assert (policy.on_error, policy.envid, policy.accounts) == ("tempfail", False, ACCOUNTS)
    assert bfmilter.policy_for(Settings()).verp_domain == ""


# -- the daemon on a socket ---------------------------------------------------------------


class Daemon:
    """``bouncefilter milter`` in a subprocess, logging to a file."""

    def __init__(self, folder: Path, socket_spec: str, engine: str = "asyncio", milter: str = "",
                 open_files: int | None = None, accounts: Sequence[dict[str, object]] = ()) -> None:
        self.folder = folder
        self.spec = socket_spec
        self.database = folder / "bouncefilter.db"
        self.log = folder / "milter.log"
        accounts_yaml = json.dumps(list(accounts) or [{"name": "shop", "domains": ["shop.example.com"]}])
        (folder / "bouncefilter.yaml").write_text(
            f"database: {self.database}\n"
            f"verp: {{domain: {VERP_DOMAIN}, keys: [{KEY}]}}\n"
            f"milter: {{socket: '{socket_spec}', stop_timeout: 20, engine: {engine}{milter}}}\n"
            "logging: {target: stderr, level: DEBUG}\n"
            f"accounts: {accounts_yaml}\n",
            encoding="utf-8",
        )
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bouncefilter", "milter", "--config", str(folder / "bouncefilter.yaml")],
                stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=None if open_files is None else (
                    lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))),
            )
        deadline = time.monotonic() + 20
        while "listening on" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the milter did not start"
            time.sleep(0.05)

    def rss_mb(self) -> float:
        """The daemon's resident memory now, in MB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    def stop(self) -> int:
        """SIGTERM, then the exit status (libmilter takes a few seconds)."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ENGINES = ("asyncio", "libmilter")


@pytest.fixture(scope="module", params=ENGINES)
def unix_daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("milter")
    folder.chmod(0o755)
    daemon = Daemon(folder, f"unix:{folder}/milter.sock", request.param)
    yield daemon
    assert daemon.stop() == 0, daemon.log.read_text()
    assert not (folder / "milter.sock").exists()
    assert "bouncefilter milter stopped" in daemon.log.read_text()


TRACKED = (("Return-Path", "<returns@shop.example.com>"), ("Subject", "Your order"), ("Message-ID", "<o-1@shop.example.com>"))


@pytest.mark.slow
def test_the_daemon_on_a_unix_socket(unix_daemon):
    path = Path(unix_daemon.spec.partition(":")[2])
    mode = path.stat()
    assert stat.S_ISSOCK(mode.st_mode)
    try:
        assert mode.st_gid == grp.getgrnam("postfix").gr_gid and stat.S_IMODE(mode.st_mode) == 0o660
    except KeyError:
        pass  # no postfix group here: the socket keeps the umask's mode
    client = WireClient(unix_daemon.spec)
    actions, protocol = client.negotiate()
    assert actions == handler.ACTIONS
    # The account refuses suppressed recipients (the default), but lists none yet: no reply at RCPT TO.
    assert protocol & Milter.P_NR_MAIL and protocol & Milter.P_NR_RCPT and protocol & Milter.P_NR_HDR
    assert protocol & Milter.P_NODATA
    # Only the macros it reads: the login and queue id at MAIL FROM, the queue id at the end.
    assert client.macro_lists == struct.pack("!I", Milter.M_ENVFROM) + b"{auth_authen} i\0" + struct.pack("!I", Milter.M_EOM) + b"i\0"
    assert client.start("<orders@shop.example.com>", ["<alice@example.net>"], TRACKED) is None
    replies = client.end("4ABC")
    (chgfrom, header, drop, final) = replies
    token = header[1].split(b"\0")[1].decode()
    assert chgfrom == (b"e", f"<b+{token}@{VERP_DOMAIN}>\0ENVID={token}\0".encode())
    assert header == (b"h", f"{TRACKING_HEADER}\0{token}\0".encode())
    assert drop == (b"m", struct.pack("!I", 1) + b"Return-Path\0\0")
    assert final == (b"c", b"")
    assert client.start("<>", ["<b+x@bounces.example.com>"], ()) is None
    assert client.end("4NUL") == [(b"c", b"")]  # a bounce: left alone
    client.close()
    row = recorded(unix_daemon, verp.verify(token, [KEY.encode()], today(), 60).message_key)
    assert row is not None and (row.queue_id, row.bounce_address) == ("4ABC", "returns@shop.example.com")


def recorded(daemon: Daemon, key: str) -> store.SentMessage | None:
    """The daemon's record of the message with ``key``, waiting up to 10 s for its writer
    thread, which records a message just after its end."""
    conn = store.connect(str(daemon.database))
    deadline = time.monotonic() + 10
    while (row := store.sent_message(conn, key)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    conn.close()
    return row


@pytest.mark.slow
def test_the_daemon_takes_the_conversation_as_postfix_shapes_it(unix_daemon):
    # A macro packet before every step, skipped ones and each header included; the
    # steps without reply written together; two aborts and a quit at the end.
    client = PostfixClient(unix_daemon.spec)
    client.negotiate()
    (chgfrom, header, final) = client.message("<orders@shop.example.com>", ["<alice@example.net>"],
                                              TRACKED[1:], "4PFX")
    assert chgfrom[0] == b"e" and chgfrom[1].startswith(b"<b+") and header[0] == b"h" and final == (b"c", b"")
    client.quit()
    token = header[1].split(b"\0")[1].decode()
    row = recorded(unix_daemon, verp.verify(token, [KEY.encode()], today(), 60).message_key)
    assert row is not None and (row.queue_id, row.subject, row.recipients) == ("4PFX", "Your order", ("alice@example.net",))


@pytest.mark.slow
def test_a_peer_that_does_not_speak_milter_is_dropped_and_the_next_one_served(unix_daemon):
    stranger = WireClient(unix_daemon.spec)
    stranger.sock.sendall(b"EHLO client.example.com\r\n")  # 0x45484c4f octets: no such packet
    with pytest.raises((EOFError, ConnectionResetError)):  # libmilter resets, the asyncio engine closes
        stranger.read()
    stranger.close()
    client = WireClient(unix_daemon.spec)
    client.negotiate()
    assert client.start("<orders@shop.example.com>", ["<alice@example.net>"], TRACKED) is None
    assert [cmd for cmd, _ in client.end("4NXT")] == [b"e", b"h", b"m", b"c"]
    client.close()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_sigterm_lets_a_message_in_flight_finish_over_tcp(tmp_path, engine):
    tmp_path.chmod(0o755)
    daemon = Daemon(tmp_path, f"inet:{free_port()}@127.0.0.1", engine)
    client = WireClient(daemon.spec)
    actions, protocol = client.negotiate()
    assert actions == handler.ACTIONS
    quiet = Milter.P_NR_MAIL | Milter.P_NR_RCPT | Milter.P_NR_HDR | Milter.P_NODATA  # nothing listed yet
    # Only libmilter answers every step on TCP (it cannot hurry the ACK Postfix's Nagle waits for).
    assert protocol & quiet == (quiet if engine == "asyncio" else 0)
    assert client.start("<orders@shop.example.com>", ["<alice@example.net>"], TRACKED) is None
    daemon.process.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert daemon.process.poll() is None  # waiting for the message
    late = WireClient(daemon.spec)  # a message that starts now goes as on_error says
    late.negotiate()
    if engine == "asyncio":
        assert late.start("<orders@shop.example.com>", ["<bob@example.net>"], ()) is None
        assert late.end("4LATE") == [(b"a", b"")]
    else:
        assert late.start("<orders@shop.example.com>", ["<bob@example.net>"], ()) == (b"a", b"")
    late.close()
    replies = client.end("4DEF")
    assert [cmd for cmd, _ in replies] == [b"e", b"h", b"m", b"c"]
    client.close()
    assert daemon.process.wait(timeout=60) == 0
    log = daemon.log.read_text()
    assert "4DEF: account=shop" in log and "bouncefilter milter stopped" in log
    assert "still in flight" not in log


def test_the_milter_removes_only_the_socket_file_it_made(tmp_path):
    path = tmp_path / "milter.sock"
    path.write_text("")
    made = milterserver.SocketFile(str(path), os.stat(path))
    path.unlink()
    time.sleep(0.05)
    path.write_text("")  # another milter started meanwhile
    milterserver.remove_socket(made)
    assert path.exists()
    milterserver.remove_socket(milterserver.SocketFile(str(path), os.stat(path)))
    assert not path.exists()
    milterserver.remove_socket(None)


@pytest.mark.slow
def test_the_asyncio_engine_holds_300_hostile_connections_and_drops_them_when_they_stall(tmp_path, capsys):
    tmp_path.chmod(0o755)
    daemon = Daemon(tmp_path, f"unix:{tmp_path}/milter.sock", milter=", idle_timeout: 60")  # a packet: 2 s
    path = str(tmp_path / "milter.sock")
    before = daemon.rss_mb()
    hostile = []
    partial = struct.pack("!I", milterwire.MAX_PACKET) + b"L" + b"x" * (milterwire.MAX_PACKET - 2)  # one byte short
    for _ in range(300):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(path)
        sock.sendall(partial)
        hostile.append(sock)
    time.sleep(0.5)
    holding = daemon.rss_mb()
    deadline = time.monotonic() + 10
    for sock in hostile:
        sock.settimeout(max(deadline - time.monotonic(), 0.1))
        assert sock.recv(1) == b""  # closed by the milter, not by us
        sock.close()
    dropped = time.monotonic()
    client = WireClient(daemon.spec)  # and the next MTA is served as ever
    client.negotiate()
    assert client.start("<orders@shop.example.com>", ["<alice@example.net>"], TRACKED) is None
    assert [cmd for cmd, _ in client.end("4NEW")] == [b"e", b"h", b"m", b"c"]
    client.close()
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert log.count("milter connection dropped: an unfinished packet for 2 s") == 300
    with capsys.disabled():
        print(f"\nmilter memory: {before:.0f} MB, with 300 hostile connections {holding:.0f} MB; "
              f"all dropped {dropped - deadline + 10:.1f} s after they stalled")
    assert holding - before < 120  # 300 packets of up to 256 KiB each, nothing more


def test_a_packet_larger_than_postfix_ever_writes_is_refused_and_a_100_kib_header_taken():
    decoder = milterwire.Decoder()
    header = b"Subject\0" + b"s" * 100 * 1024 + b"\0"  # Postfix's header_size_limit: 102400
    assert decoder.feed(milterwire.packet(b"L", header)) == [(b"L", header)]
    with pytest.raises(milterwire.ProtocolError):
        decoder.feed(struct.pack("!I", milterwire.MAX_PACKET + 1) + b"L")



@pytest.mark.slow
def test_the_asyncio_engine_closes_a_connection_that_sends_nothing_for_idle_timeout(tmp_path):
    tmp_path.chmod(0o755)
    daemon = Daemon(tmp_path, f"unix:{tmp_path}/milter.sock", milter=", idle_timeout: 1")
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(tmp_path / "milter.sock"))
    sock.settimeout(10)
    started = time.monotonic()
    assert sock.recv(1) == b""
    assert 0.9 < time.monotonic() - started < 8
    sock.close()
    assert daemon.stop() == 0
    assert "milter connection dropped: nothing for 1 s" in daemon.log.read_text()


@pytest.mark.slow
def test_connections_near_the_open_file_limit_are_said_in_the_log(tmp_path):
    tmp_path.chmod(0o755)
    daemon = Daemon(tmp_path, f"unix:{tmp_path}/milter.sock", open_files=96)
    socks = []
    for _ in range(80):  # past 96 - 32: the warning; past what is left: resets, which no one would see
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(tmp_path / "milter.sock"))
        socks.append(sock)
    time.sleep(0.5)
    for sock in socks:
        sock.close()
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "MTA connections open and 96 files allowed (RLIMIT_NOFILE): new connections are reset" in log
    assert log.count("files allowed (RLIMIT_NOFILE)") == 1  # once a minute at most



@pytest.mark.slow
def test_both_engines_take_a_100_kib_header_as_postfix_allows(unix_daemon):
    # Postfix's header_size_limit is 102400; libmilter's own packet limit is 64 KiB unless raised.
    big = ("X-Long", "v" * 100 * 1024)
    client = WireClient(unix_daemon.spec)
    client.negotiate()
    assert client.start("<orders@shop.example.com>", ["<alice@example.net>"], TRACKED + (big,)) is None
    assert [cmd for cmd, _ in client.end("4BIG")] == [b"e", b"h", b"m", b"c"]
    client.close()


@pytest.mark.slow
def test_the_asyncio_engine_closes_connections_over_max_connections_unanswered_and_says_so_once(tmp_path):
    tmp_path.chmod(0o755)
    daemon = Daemon(tmp_path, f"unix:{tmp_path}/milter.sock", milter=", max_connections: 2")
    served = [WireClient(daemon.spec) for _ in range(2)]
    for client in served:
        client.negotiate()
    for _ in range(3):  # the MTA's negotiation finds the connection closed: milter_default_action
        over = WireClient(daemon.spec)
        with pytest.raises((EOFError, ConnectionResetError, BrokenPipeError)):
            over.negotiate()
        over.close()
    served[0].close()
    time.sleep(0.2)
    client = WireClient(daemon.spec)  # below the limit again: served
    client.negotiate()
    assert client.start("<orders@shop.example.com>", ["<alice@example.net>"], TRACKED) is None
    assert [cmd for cmd, _ in client.end("4LIM")] == [b"e", b"h", b"m", b"c"]
    for open_client in (client, served[1]):
        open_client.close()
    assert daemon.stop() == 0
    log = daemon.log.read_text()
    assert "1 MTA connections refused: 2 are open (milter.max_connections)" in log
    assert log.count("(milter.max_connections)") == 1  # once a minute at most
