"""Both engines driven by OpenDKIM's miltertest, an MTA side this repository did not write.

The Lua scripts in tests/fixtures/miltertest/ walk every branch of the milter over one
connection each (negotiation, macros, recipients refused and discarded, headers, body
chunks, end of message with its changes, abort, quit, further messages, a bounce) and
fail on any reply or change miltertest does not see as expected; this module runs them
against ``bouncefilter milter`` with each engine, then checks what miltertest read
packet by packet (its ``-vv`` account: the CHGFROM, which its ``eom_check`` cannot test,
included), the tokens against the daemon's records, and its log.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_milter import ENGINES, KEY, VERP_DOMAIN, Daemon, recorded, today
from test_milter_suppression import suppress

from bouncefilter import store
from bouncefilter.core import verp

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "miltertest"
MILTERTEST = shutil.which("miltertest")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(MILTERTEST is None, reason="miltertest is not installed (Debian package miltertest; make test installs it)"),
]
ACCOUNTS = [
    {"name": "shop", "domains": ["shop.example.com"]},
    {"name": "news", "domains": ["news.example.org"], "suppression": {"enforce": "discard"}},
]
#: What the milter asks for whatever the MTA offers beyond it.
ACTIONS = "ADDHDRS DELRCPT CHGHDRS CHGFROM SETSYMLIST"


@pytest.fixture(scope="module", params=ENGINES)
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("miltertest")
    folder.chmod(0o755)
    database = str(folder / "bouncefilter.db")
    conn = store.connect(database)
    store.migrate(conn)
    conn.close()
    suppress(database, "shop", "gone@example.net")  # refused at RCPT TO
    suppress(database, "news", "gone@example.org", "complaint", "abuse")  # removed at the end
    started = Daemon(folder, f"unix:{folder}/milter.sock", request.param, accounts=ACCOUNTS)
    yield started
    assert started.stop() == 0, started.log.read_text()


def miltertest(daemon: Daemon, script: str, **defines: str) -> str:
    """miltertest's output for ``script`` against the daemon; fails unless it ran through."""
    args = [str(MILTERTEST), "-vv", "-s", str(FIXTURES / script), "-D", f"FIXTURES={FIXTURES}",
            "-D", f"SOCKET={daemon.spec}"]
    for name, value in defines.items():
        args += ["-D", f"{name}={value}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "DONE" in output, output + daemon.log.read_text()
    return output


def read_packets(output: str) -> list[tuple[str, int]]:
    """The packets miltertest read from the milter, in order: (command, data length)."""
    return [(cmd, int(length)) for cmd, length in re.findall(r"mt_milter_read\(\d+\): cmd (.), len (\d+)", output)]


def echoed(output: str, name: str) -> str:
    match = re.search(rf"^{name}=(.*)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def chgfrom_length(token: str) -> int:
    """The data of the CHGFROM a tracked message gets: the VERP sender, then ENVID."""
    return len(f"<b+{token}@{VERP_DOMAIN}>\0ENVID={token}\0")


def record_of(daemon: Daemon, token: str) -> store.SentMessage:
    row = recorded(daemon, verp.verify(token, [KEY.encode()], today(), 60).message_key)
    assert row is not None, token
    return row


def test_a_submission_session_with_refused_discarded_aborted_and_bounced_mail(daemon):
    output = miltertest(daemon, "session.lua")
    # Every step may be skipped or left unanswered but RCPT TO (an account refuses a listed
    # address) and end of message; the macros named: "{auth_authen} i" at MAIL, "i" at EOM.
    assert echoed(output, "OPTIONS") == "NOCONNECT NOHELO NOBODY NOEOH NODATA NOUNKNOWN NR_MAIL NR_HDR SKIP"
    assert echoed(output, "ACTIONS") == ACTIONS
    first, third = echoed(output, "TOKEN1"), echoed(output, "TOKEN3")
    refusal = len("550 5.1.1 <gone@example.net>: suppressed by bouncefilter since 2026-12-01 (userunknown); "
                  "see bouncefilter suppression explain\0")
    assert read_packets(output) == [
        ("O", 12 + 4 + len("{auth_authen} i\0") + 4 + len("i\0")),
        ("c", 0), ("y", refusal), ("c", 0),  # 1: ann, gone (refused), bob
        ("e", chgfrom_length(first)), ("h", len(f"X-Bouncefilter-Token\0{first}\0")),
        ("m", 4 + len("Return-Path\0\0")), ("c", 0),
        ("c", 0),  # 2: carol, then the abort (no reply)
        ("c", 0), ("c", 0),  # 3: gone (kept until the end), dan
        ("-", len("<gone@example.org>\0")), ("e", chgfrom_length(third)), ("h", len(f"X-Bouncefilter-Token\0{third}\0")),
        ("c", 0),
        ("c", 0), ("d", 0),  # 4: its only recipient suppressed: discarded whole
        ("c", 0), ("c", 0),  # 5: a bounce, left alone
    ]
    shop, news = record_of(daemon, first), record_of(daemon, third)
    assert (shop.queue_id, shop.recipients, shop.bounce_address, shop.subject) == (
        "4MT1", ("ann@example.net", "bob@example.net"), "returns@shop.example.com", "Your order 1234")
    assert (news.queue_id, news.recipients) == ("4MT3", ("dan@example.org",))
    log = daemon.log.read_text()
    assert "4MT1: account=shop to=<gone@example.net> refused: suppressed (hard, userunknown)" in log
    assert "4MT3: account=news to=<gone@example.org> discarded: suppressed (complaint, abuse)" in log
    assert "4MT4: account=news from=<letters@news.example.org> discarded: all 1 recipients suppressed" in log
    assert "4MT2:" not in log and "4MT5:" not in log  # aborted; a bounce


@pytest.mark.parametrize(("protocol", "options", "sent"), [
    # No step may be skipped: all are sent, the milter answers all but MAIL FROM and headers.
    ("0x1ffc80", "NR_MAIL NR_HDR SKIP",
     ["connect", "helo", "unknown"] + ["mail", "rcpt", "data", "header", "header", "eoh", "body", "body"] * 2),
    # Nothing offered: a version 1 MTA (libmilter's reading), which may skip CONNECT, HELO and the body.
    ("0", "NOCONNECT NOHELO NOBODY", ["unknown"] + ["mail", "rcpt", "data", "header", "header", "eoh"] * 2),
])
def test_every_step_an_mta_insists_on_is_taken_and_answered(daemon, protocol, options, sent):
    output = miltertest(daemon, "everystep.lua", PROTOCOL=protocol)
    assert echoed(output, "OPTIONS") == options
    assert echoed(output, "ACTIONS") == ACTIONS
    assert re.findall(r"^SENT (\w+)$", output, re.MULTILINE) == sent
    for n in (1, 2):
        token = echoed(output, f"TOKEN{n}")
        row = record_of(daemon, token)
        assert (row.queue_id, row.recipients, row.bounce_address) == (
            f"4EVERY{n}", ("ann@example.net",), "returns@shop.example.com")
        assert ("e", chgfrom_length(token)) in read_packets(output)
