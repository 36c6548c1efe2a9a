"""The milter enforces the suppression list: the list in memory and its reply (pure), the
refresher against a real store, the handler in process (Milter.testctx), then the daemon
on its socket with both engines (tests/support/milter_client.py)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import Milter
import Milter.testctx
import pytest
from test_milter import ENGINES, HEADERS, KEY, TRACKED, VERP_DOMAIN, Ctx, Daemon, send

from bouncefilter import store
from bouncefilter.config import Account, Settings, SuppressionSettings
from bouncefilter.milter import decision, refresh
from bouncefilter.milter import service as bfmilter
from bouncefilter.milter.decision import Policy
from bouncefilter.milter.handler import InFlight, OutboundMilter, QuietMilter
from bouncefilter.milter.recorder import Recorder
from bouncefilter.milter.refresh import Refresher
from bouncefilter.milter.suppressed import Listing, SuppressionList, refusal

from support.milter_client import WireClient

T0 = 1_796_083_200.0  # 2026-12-01 00:00 UTC
HARD = Listing("hard", "userunknown", T0, None)
SHOP = Account(name="shop", domains=("shop.example.com",))
NEWS = Account(name="news", domains=("news.example.org",), tracking=False,
               suppression=SuppressionSettings(enforce="discard"))
QUIET = Account(name="quiet", domains=("quiet.example.net",), suppression=SuppressionSettings(enforce="off"))
ACCOUNTS = (SHOP, NEWS, QUIET)
ENFORCE = {"shop": "reject", "news": "discard"}


# -- the list and its reply (pure) ----------------------------------------------------------


def test_a_listing_is_found_for_its_account_only_and_lapses_by_its_until():
    rows = [("shop", "gone@example.net", "hard", "userunknown", T0, None),
            ("shop", "full@example.net", "soft", "mailboxfull", T0, T0 + 3600)]
    listed = SuppressionList(rows)
    assert listed.find("shop", "gone@example.net", T0 + 10**8) == HARD
    assert listed.find("news", "gone@example.net", T0) is None
    assert listed.find("shop", "other@example.net", T0) is None
    assert listed.find("shop", "full@example.net", T0 + 3599) == Listing("soft", "mailboxfull", T0, T0 + 3600)
    assert listed.find("shop", "full@example.net", T0 + 3600) is None  # lapsed
    assert len(listed) == 2


def test_put_lists_and_takes_off_and_replace_swaps_the_whole_list():
    listed = SuppressionList()
    listed.put("news", "x@example.org", HARD)
    assert listed.find("news", "x@example.org", T0) == HARD
    listed.put("news", "x@example.org", None)
    listed.put("unknown", "y@example.org", None)  # nothing to take off: no error
    assert listed.find("news", "x@example.org", T0) is None
    listed.put("news", "x@example.org", HARD)
    listed.replace([("shop", "z@example.com", "manual", "", T0, None)])
    assert listed.find("news", "x@example.org", T0) is None
    assert listed.find("shop", "z@example.com", T0) == Listing("manual", "", T0, None)


def test_the_refusal_says_why_and_since_when():
    assert refusal("x@example.com", HARD) == (
        "550", "5.1.1", "<x@example.com>: suppressed by bouncefilter since 2026-12-01 (userunknown); "
        "see bouncefilter suppression explain")
    # No detail: the reason. A complaint is policy: 5.7.1.
    assert refusal("X@example.com", Listing("manual", "", T0 - 1, None))[1:] == (
        "5.1.1", "<X@example.com>: suppressed by bouncefilter since 2026-11-30 (manual); "
        "see bouncefilter suppression explain")
    assert refusal("x@example.com", Listing("complaint", "abuse", T0, None))[1] == "5.7.1"


def test_the_refusal_doubles_percent_and_keeps_to_one_printable_line():
    code, status, text = refusal("a%b\r\n@example.com", HARD)
    assert text.startswith("<a%%b??@example.com>: suppressed") and "\n" not in text
    assert (code, status) == ("550", "5.1.1")


# -- the refresher against a real store -------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = str(tmp_path / "bouncefilter.db")
    conn = store.connect(path)
    store.migrate(conn)
    conn.close()
    return path


def suppress(path: str, account: str, address: str, reason: str = "hard", detail: str = "userunknown",
             until: float | None = None, at: float = T0) -> None:
    conn = store.connect(path)
    try:
        assert store.suppressions.suppress(conn, account, address, reason, at, "test", detail=detail, until=until)
    finally:
        conn.close()


def lift(path: str, account: str, address: str, at: float = T0 + 60) -> None:
    conn = store.connect(path)
    try:
        assert store.suppressions.lift(conn, account, address, at, "test", admin=True) == store.suppressions.LIFTED
    finally:
        conn.close()


def test_the_refresher_loads_the_list_then_reads_only_what_changed(database, caplog):
    caplog.set_level(logging.DEBUG)
    suppress(database, "shop", "Gone@Example.NET")
    suppress(database, "shop", "was@example.net")
    lift(database, "shop", "was@example.net")
    keeper = Refresher(database, SuppressionList(), clock=lambda: T0 + 120)
    assert keeper.refresh()
    assert keeper.suppressed.find("shop", "gone@example.net", T0) == HARD
    assert keeper.suppressed.find("shop", "was@example.net", T0) is None and len(keeper.suppressed) == 1
    suppress(database, "news", "new@example.org", "manual", "")
    lift(database, "shop", "gone@example.net")
    assert keeper.refresh()
    assert keeper.suppressed.find("news", "new@example.org", T0).reason == "manual"
    assert keeper.suppressed.find("shop", "gone@example.net", T0) is None
    assert "suppression list: 2 addresses read again" in caplog.text
    caplog.clear()
    assert keeper.refresh()  # nothing changed: nothing read again
    assert "read again" not in caplog.text
    keeper.close()


def test_a_lapsed_listing_is_found_no_more_at_once_and_leaves_the_memory_at_the_hourly_reload(database, monkeypatch):
    suppress(database, "shop", "full@example.net", "soft", "mailboxfull", until=T0 + 100)
    now = [T0]
    keeper = Refresher(database, SuppressionList(), clock=lambda: now[0])
    assert keeper.refresh() and keeper.suppressed.find("shop", "full@example.net", now[0]) is not None
    now[0] = T0 + 200
    assert keeper.refresh() and keeper.suppressed.find("shop", "full@example.net", now[0]) is None
    assert len(keeper.suppressed) == 1  # still held: nothing in the history changed
    monkeypatch.setattr(refresh, "RELOAD_SECONDS", 0.0)
    assert keeper.refresh() and len(keeper.suppressed) == 0
    keeper.close()


def test_a_store_that_cannot_be_read_leaves_the_last_list_and_is_tried_again(database, caplog):
    caplog.set_level(logging.INFO)
    suppress(database, "shop", "gone@example.net")
    keeper = Refresher(database, SuppressionList())
    assert keeper.refresh()
    broken = sqlite3.connect(database)
    broken.execute("ALTER TABLE suppression_history RENAME TO elsewhere")
    broken.commit()
    assert not keeper.refresh() and not keeper.refresh()
    assert keeper.suppressed.find("shop", "gone@example.net", T0) == HARD  # the last good list
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]  # logged once, not every second
    assert "suppression list: cannot read" in error.getMessage() and "mail flows with the 1 listings" in error.getMessage()
    broken.execute("ALTER TABLE elsewhere RENAME TO suppression_history")
    broken.commit()
    broken.close()
    assert keeper.refresh()
    assert "suppression list read again from" in caplog.text
    keeper.close()


def test_a_list_never_read_is_empty_and_the_thread_keeps_trying(tmp_path, caplog):
    missing = tmp_path / "later" / "bouncefilter.db"
    keeper = Refresher(str(missing), SuppressionList(), interval=0.05).start()
    try:
        assert len(keeper.suppressed) == 0 and "cannot read" in caplog.text
        missing.parent.mkdir()
        conn = store.connect(str(missing))
        store.migrate(conn)
        conn.close()
        suppress(str(missing), "shop", "gone@example.net")
        deadline = time.monotonic() + 5
        while keeper.suppressed.find("shop", "gone@example.net", T0) is None:
            assert time.monotonic() < deadline, "the refresher never read the list"
            time.sleep(0.02)
    finally:
        keeper.close()


# -- the handler in process ----------------------------------------------------------------


class Harness:
    """Milters with a suppression list in memory, as ``bouncefilter milter`` builds them."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.database = str(tmp_path / "bouncefilter.db")
        conn = store.connect(self.database)
        store.migrate(conn)
        conn.close()
        self.monkeypatch = monkeypatch
        self.suppressed = SuppressionList()
        self.recorder = Recorder(self.database)

    def ctx(self, enforce: dict[str, str] | None = None, cls: type[OutboundMilter] = QuietMilter) -> Ctx:
        policy = Policy(accounts=ACCOUNTS, verp_domain=VERP_DOMAIN, signing_key=KEY.encode(),
                        enforce=ENFORCE if enforce is None else enforce)
        self.monkeypatch.setattr(Milter, "factory", lambda: cls(policy, self.recorder, InFlight(), self.suppressed))
        self.monkeypatch.setattr(Milter.testctx.TestCtx, "default_opts", [Milter.CURR_ACTS, 0x1FFFFF, 0, 0])
        ctx = RecipientCtx()
        assert ctx._connect() == Milter.CONTINUE
        return ctx

    def recipients(self) -> list[tuple[str, ...]]:
        self.recorder.flush()
        conn = store.connect(self.database)
        try:
            return [store.sent_message(conn, key).recipients  # type: ignore[union-attr]
                    for (key,) in conn.execute("SELECT message_key FROM messages ORDER BY sent_at")]
        finally:
            conn.close()


class RecipientCtx(Ctx):
    """Also records delrcpt, and each RCPT TO's reply."""

    def delrcpt(self, rcpt: str) -> None:
        self._action("delrcpt", rcpt)


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    built = Harness(tmp_path, monkeypatch)
    built.suppressed.put("shop", "gone@example.net", HARD)
    built.suppressed.put("news", "gone@example.net", Listing("complaint", "abuse", T0, None))
    yield built
    built.recorder.close()


def rcpt_replies(ctx: Ctx, sender: str, rcpts: Sequence[str]) -> list[int]:
    ctx._setsymval("{auth_authen}", "")
    ctx._setsymval("i", "")
    assert ctx._envfrom(sender) in (Milter.CONTINUE, Milter.NOREPLY)
    return [int(ctx._envrcpt(rcpt)) for rcpt in rcpts]


def test_a_suppressed_recipient_is_refused_at_rcpt_and_the_others_go_on(harness):
    ctx = harness.ctx()
    assert not ctx._protocol & Milter.P_NR_RCPT  # RCPT TO takes a reply
    replies = rcpt_replies(ctx, "<orders@shop.example.com>", ["<alice@example.net>", "<Gone@Example.NET>"])
    assert replies == [Milter.CONTINUE, Milter.REJECT]
    assert ctx._reply == ("550", "5.1.1", "<Gone@Example.NET>: suppressed by bouncefilter since 2026-12-01 "
                          "(userunknown); see bouncefilter suppression explain")
    for name, value in HEADERS:
        ctx._header(name, value)
    ctx._setsymval("i", "4RCPT")
    assert ctx._eom() == Milter.CONTINUE
    assert [a[0] for a in ctx.actions] == ["chgfrom", "addheader"]  # nothing removed: never accepted
    assert harness.recipients() == [("alice@example.net",)]


def test_rcpt_to_takes_no_reply_while_no_account_that_rejects_lists_anything(harness):
    harness.suppressed.replace([("news", "gone@example.net", "complaint", "abuse", 1.0, None)])  # news discards
    assert harness.ctx()._protocol & Milter.P_NR_RCPT
    harness.suppressed.put("shop", "new@example.net", HARD)
    assert not harness.ctx()._protocol & Milter.P_NR_RCPT  # the next connection answers RCPT TO


def test_discard_removes_the_recipient_at_the_end_and_says_so(harness, caplog):
    caplog.set_level(logging.INFO)
    ctx = harness.ctx()
    replies = rcpt_replies(ctx, "<letters@news.example.org>", ["<gone@example.net>", "<bob@example.org>"])
    assert replies == [Milter.CONTINUE, Milter.CONTINUE]
    ctx._setsymval("i", "4DISC")
    assert ctx._eom() == Milter.CONTINUE
    assert ctx.actions == [("delrcpt", "<gone@example.net>")]
    assert "4DISC: account=news to=<gone@example.net> discarded: suppressed (complaint, abuse)" in caplog.text


def test_a_message_whose_every_recipient_is_discarded_is_discarded_whole(harness, caplog):
    caplog.set_level(logging.INFO)
    harness.suppressed.put("shop", "also@example.net", HARD)
    ctx = harness.ctx({"shop": "discard"})
    assert ctx._protocol & Milter.P_NR_RCPT  # no account refuses: RCPT TO keeps taking no reply
    assert send(ctx, "<orders@shop.example.com>", ["<gone@example.net>", "<also@example.net>"],
                queue_id="4ALL") == Milter.DISCARD
    assert ctx.actions == [] and harness.recipients() == []  # nothing changed, nothing recorded
    assert "4ALL: account=shop to=<also@example.net> discarded: suppressed (hard, userunknown)" in caplog.text
    assert "4ALL: account=shop from=<orders@shop.example.com> discarded: all 2 recipients suppressed" in caplog.text
    # A discarded recipient is not in the record of a message that goes.
    assert send(ctx, "<orders@shop.example.com>", ["<gone@example.net>", "<ann@example.net>"]) == Milter.CONTINUE
    assert ("delrcpt", "<gone@example.net>") in ctx.actions
    assert harness.recipients() == [("ann@example.net",)]


@pytest.mark.parametrize(("sender", "rcpt"), [
    ("<>", "<gone@example.net>"),  # a bounce
    ("<someone@elsewhere.example.org>", "<gone@example.net>"),  # no account's
    ("<mail@quiet.example.net>", "<gone@example.net>"),  # enforce: off
    ("<orders@shop.example.com>", "<gone@example.org>"),  # not on the shop's list
])
def test_mail_the_list_does_not_govern_is_untouched(harness, sender, rcpt):
    harness.suppressed.put("quiet", "gone@example.net", HARD)
    ctx = harness.ctx()
    assert send(ctx, sender, [rcpt]) in (Milter.CONTINUE, Milter.ACCEPT)
    assert ctx._reply is None and not [a for a in ctx.actions if a[0] == "delrcpt"]


def test_without_a_list_the_milter_enforces_nothing_and_takes_no_rcpt_reply(harness, monkeypatch):
    policy = Policy(accounts=ACCOUNTS, verp_domain=VERP_DOMAIN, signing_key=KEY.encode(), enforce=ENFORCE)
    monkeypatch.setattr(Milter, "factory", lambda: QuietMilter(policy, harness.recorder, InFlight()))
    monkeypatch.setattr(Milter.testctx.TestCtx, "default_opts", [Milter.CURR_ACTS, 0x1FFFFF, 0, 0])
    ctx = RecipientCtx()
    ctx._connect()
    assert ctx._protocol & Milter.P_NR_RCPT
    assert send(ctx, "<orders@shop.example.com>", ["<gone@example.net>"]) == Milter.CONTINUE


def test_the_policy_names_only_the_accounts_that_enforce():
    policy = bfmilter.policy_for(Settings(accounts=ACCOUNTS))
    assert dict(policy.enforce) == ENFORCE
    assert decision.rejecting(policy) == ("shop",) and decision.enforcement(policy, QUIET) == "off"
    assert decision.rejecting(policy._replace(enforce={"news": "discard"})) == ()


def test_a_failing_lookup_follows_on_error_at_the_end(harness, monkeypatch, caplog):
    ctx = harness.ctx()

    def broken(*args: Any) -> None:
        raise RuntimeError("lookup broken on purpose")

    monkeypatch.setattr(harness.suppressed, "find", broken)
    assert send(ctx, "<orders@shop.example.com>", ["<gone@example.net>"]) == Milter.ACCEPT
    assert "RCPT TO failed" in caplog.text and "lookup broken on purpose" in caplog.text


# -- the daemon on its socket, both engines ------------------------------------------------------

DAEMON_ACCOUNTS = [
    {"name": "shop", "domains": ["shop.example.com"]},
    {"name": "news", "domains": ["news.example.org"], "suppression": {"enforce": "discard"}},
]


@pytest.fixture(scope="module", params=ENGINES)
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("suppressing")
    folder.chmod(0o755)
    conn = store.connect(str(folder / "bouncefilter.db"))
    store.migrate(conn)
    conn.close()
    suppress(str(folder / "bouncefilter.db"), "shop", "gone@example.net")  # listed before the start
    suppress(str(folder / "bouncefilter.db"), "news", "gone@example.net", "complaint", "abuse")
    started = Daemon(folder, f"unix:{folder}/milter.sock", request.param, accounts=DAEMON_ACCOUNTS)
    yield started
    assert started.stop() == 0, started.log.read_text()


def refused(daemon: Daemon, rcpts: Sequence[str], sender: str = "<orders@shop.example.com>",
            queue_id: str = "4SUP") -> tuple[list[tuple[bytes, bytes] | None], list[tuple[bytes, bytes]]]:
    """One message over the socket: the replies to its RCPT TOs, and to its end."""
    client = WireClient(daemon.spec)
    try:
        client.negotiate()
        assert client.start(sender, rcpts, TRACKED) is None
        return client.rcpt_replies, client.end(queue_id)
    finally:
        client.close()


REPLY = (b"y", b"550 5.1.1 <gone@example.net>: suppressed by bouncefilter since 2026-12-01 (userunknown); "
               b"see bouncefilter suppression explain\0")


@pytest.mark.slow
def test_the_daemon_refuses_a_suppressed_recipient_at_rcpt_with_its_reason(daemon):
    rcpts, end = refused(daemon, ["<ann@example.net>", "<gone@example.net>"])
    assert rcpts == [(b"c", b""), REPLY]
    assert [cmd for cmd, _ in end] == [b"e", b"h", b"m", b"c"]  # the other recipient goes on


@pytest.mark.slow
def test_the_daemon_discards_for_a_discarding_account(daemon):
    rcpts, end = refused(daemon, ["<gone@example.net>", "<ann@example.net>"], "<letters@news.example.org>", "4NEWS")
    assert rcpts == [(b"c", b""), (b"c", b"")]
    assert end[0] == (b"-", b"<gone@example.net>\0") and end[-1] == (b"c", b"")
    _, end = refused(daemon, ["<gone@example.net>"], "<letters@news.example.org>", "4WHOLE")
    assert end == [(b"d", b"")]
    log = daemon.log.read_text()
    assert "4NEWS: account=news to=<gone@example.net> discarded: suppressed (complaint, abuse)" in log
    assert "4WHOLE: account=news from=<letters@news.example.org> discarded: all 1 recipients suppressed" in log


@pytest.mark.slow
def test_the_daemon_sees_a_listing_and_its_lifting_within_two_seconds(daemon):
    database = str(daemon.database)
    suppress(database, "shop", "late@example.net", "manual", "", at=time.time())
    assert wait_for(daemon, "<late@example.net>", lambda reply: reply[0] == b"y")
    lift(database, "shop", "late@example.net", at=time.time())
    assert wait_for(daemon, "<late@example.net>", lambda reply: reply == (b"c", b""))


def wait_for(daemon: Daemon, rcpt: str, wanted: Any, timeout: float = 2.5) -> bool:
    """Whether the reply to RCPT TO ``rcpt`` becomes ``wanted`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (reply, other), _ = refused(daemon, [rcpt, "<ann@example.net>"])
        assert other == (b"c", b"")
        if wanted(reply):
            return True
        time.sleep(0.1)
    return False
