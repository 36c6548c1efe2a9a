"""The ``bouncefilter`` command line: help, exit codes, classify, check-config."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bouncefilter.cli import commands, main, parser
from bouncefilter.pipe import command
from bouncefilter.pipe.command import USAGE, Arguments

DSN = b"""\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.test>
To: b+token@bounces.example.com
Subject: Undelivered Mail Returned to Sender
Message-Id: <20240101.ABC@mx.example.test>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

<nobody@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1
    <nobody@example.net>: Recipient address rejected: User unknown (in reply to
    RCPT TO command)

--BOUNDARY
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.test

Final-Recipient: rfc822; nobody@example.net
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address
    rejected: User unknown

--BOUNDARY
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Shop <orders@shop.example.com>
To: nobody@example.net
Subject: Your order
Message-ID: <order-1@shop.example.com>

--BOUNDARY--
"""

REPLY = b"""\
From: Someone <someone@example.net>
To: b+token@bounces.example.com
Subject: Re: Your order
Message-ID: <reply-1@example.net>

Thank you, but where is my parcel?
"""

VALID = "verp: {domain: bounces.example.com, keys: [0123456789abcdef0123456789abcdef]}\n"


def subcommands() -> list[str]:
    """The name of every subcommand the parser knows."""
    (action,) = [a for a in parser.build()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


def run(argv: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """``python -m bouncefilter ARGV`` in a fresh process, with no configuration in the environment."""
    env = {k: v for k, v in os.environ.items() if k != "BOUNCEFILTER_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "bouncefilter", *argv], input=stdin.decode(), capture_output=True, text=True,
        env=env, timeout=60, check=False,
    )


@pytest.fixture
def messages(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "dsn.eml").write_bytes(DSN)
    (tmp_path / "reply.eml").write_bytes(REPLY)
    return tmp_path / "dsn.eml", tmp_path / "reply.eml"


def test_every_subcommand_has_help(capsys):
    assert "classify" in subcommands() and "check-config" in subcommands()
    for argv in ([], *([name] for name in subcommands())):
        with pytest.raises(SystemExit) as caught:
            main.main([*argv, "--help"])
        assert caught.value.code == 0, argv
        assert "usage: bouncefilter" in capsys.readouterr().out


def test_the_exit_codes_are_documented():
    for code in (commands.EXIT_OK, commands.EXIT_FAILED, commands.EXIT_USAGE, commands.EXIT_CONFIG):
        assert f"{code} " in main.__doc__
    assert (commands.EXIT_USAGE, commands.EXIT_CONFIG) == (2, 78)
    assert "78 bad configuration" in parser.build().format_help()


def test_a_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main.main(["no-such-command"])
    assert caught.value.code == commands.EXIT_USAGE
    assert "invalid choice" in capsys.readouterr().err


def test_the_installed_command_runs():
    path = Path(sys.executable).with_name("bouncefilter")
    if not path.exists():
        pytest.skip("the console script is installed by `make venv`")
    done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.startswith("bouncefilter ")


def test_classify_reads_standard_input():
    done = run(["classify", "--json"], DSN)
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert record["file"] == "-"
    assert record["recipient"] == "nobody@example.net"
    assert (record["status"], record["reason"], record["hard"]) == ("5.1.1", "userunknown", True)
    assert record["original_message_id"] == "<order-1@shop.example.com>"


def test_classify_prints_one_json_line_per_record_and_none_for_a_non_bounce(messages, capsys):
    dsn, reply = messages
    assert main.main(["classify", "--json", str(dsn), str(reply)]) == commands.EXIT_OK
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["file"], line["recipient"]) for line in lines] == [("dsn.eml", "nobody@example.net")]


def test_classify_prints_a_table_by_default(messages, capsys):
    dsn, reply = messages
    assert main.main(["classify", str(dsn), str(reply)]) == commands.EXIT_OK
    out = capsys.readouterr().out
    assert f"{dsn}: bounce" in out
    assert "nobody@example.net" in out and "userunknown" in out
    assert f"{reply}: " in out


def test_classify_of_an_unreadable_file_exits_1_after_the_others(messages, capsys, tmp_path):
    dsn, _ = messages
    assert main.main(["classify", "--json", str(tmp_path / "missing.eml"), str(dsn)]) == commands.EXIT_FAILED
    captured = capsys.readouterr()
    assert "missing.eml" in captured.err
    assert json.loads(captured.out)["recipient"] == "nobody@example.net"


def test_classify_needs_no_configuration(monkeypatch, messages, capsys):
    monkeypatch.setenv("BOUNCEFILTER_CONFIG", "/nonexistent/bouncefilter.yaml")
    assert main.main(["--config", "/nonexistent/either.yaml", "classify", str(messages[0])]) == commands.EXIT_OK


def test_check_config_accepts_a_valid_file(config_file, capsys):
    path = config_file(VALID)
    assert main.main(["check-config", "--config", str(path)]) == commands.EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"# {path}: valid (1 VERP key, 0 accounts)")
    assert "domain: bounces.example.com" in out and "0123456789abcdef" not in out


def test_check_config_takes_the_path_before_the_subcommand_or_from_the_environment(config_file, monkeypatch, capsys):
    path = config_file(VALID)
    assert main.main(["--config", str(path), "check-config"]) == commands.EXIT_OK
    monkeypatch.setenv("BOUNCEFILTER_CONFIG", str(path))
    assert main.main(["check-config"]) == commands.EXIT_OK
    assert capsys.readouterr().out.count("valid") == 2


def test_check_config_exits_78_on_a_bad_file_naming_the_key(config_file):
    path = config_file("verp: {prefx: c}\n")
    done = run(["check-config", "--config", str(path)])
    assert done.returncode == commands.EXIT_CONFIG == 78
    assert done.stderr == f"bouncefilter: {path}: verp.prefx: unknown key (did you mean prefix?)\n"
    assert done.stdout == ""


@pytest.mark.parametrize("setup", ["missing file", "missing keys file"])
def test_check_config_exits_78_when_a_file_is_missing(config_file, tmp_path, capsys, setup):
    if setup == "missing file":
        path, named = tmp_path / "nowhere.yaml", "nowhere.yaml"
    else:
        path, named = config_file("verp: {domain: bounces.example.com, keys_file: verp.keys}\n"), "verp.keys"
    assert main.main(["check-config", "--config", str(path)]) == commands.EXIT_CONFIG
    assert named in capsys.readouterr().err


# -- milter, verp, db ---------------------------------------------------------------------

KEY = "0123456789abcdef0123456789abcdef"


def test_the_nested_subcommands_have_help(capsys):
    for argv in (["verp", "encode"], ["verp", "decode"], ["db", "migrate"], ["milter"]):
        with pytest.raises(SystemExit) as caught:
            main.main([*argv, "--help"])
        assert caught.value.code == 0, argv
        out = capsys.readouterr().out
        assert f"usage: bouncefilter {' '.join(argv)}" in out and "Exit codes:" in out


def test_verp_encode_then_decode(config_file, capsys):
    path = str(config_file(VALID))
    assert main.main(["verp", "encode", "--config", path, "--date", "2030-01-02", "0123456789abcdef"]) == commands.EXIT_OK
    address = capsys.readouterr().out.strip()
    assert address.startswith("b+") and address.endswith("@bounces.example.com")
    token = address[2:].partition("@")[0]
    # The same key and date always give the same address; the check prints what it holds.
    assert main.main(["verp", "encode", "--config", path, "--date", "2030-01-02", "0123456789ABCDEF"]) == commands.EXIT_OK
    assert capsys.readouterr().out.strip() == address
    assert main.main(["--config", path, "verp", "decode", address.upper()]) == commands.EXIT_OK
    assert capsys.readouterr().out == f"valid message_key=0123456789abcdef issued=2030-01-02 token={token}\n"
    assert main.main(["--config", path, "verp", "decode", token]) == commands.EXIT_OK  # a bare token, as in the header
    assert capsys.readouterr().out.startswith("valid ")


def test_verp_encode_picks_a_random_key_and_today(config_file, capsys):
    path = str(config_file(VALID))
    assert main.main(["verp", "encode", "--config", path]) == commands.EXIT_OK
    assert main.main(["verp", "encode", "--config", path]) == commands.EXIT_OK
    first, second = capsys.readouterr().out.split()
    assert first != second
    assert main.main(["verp", "decode", "--config", path, first]) == commands.EXIT_OK
    from datetime import datetime, timezone

    assert f"issued={datetime.now(timezone.utc).date().isoformat()}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("address", "line"),
    [
        ("b+aeasgrlhrgv4332rc2w5kqiav5fkkla@bounces.example.com", "forged token=aeasgrlhrgv4332rc2w5kqiav5fkkla"),
        ("b+test@bounces.example.com", "forged token=test"),
        ("someone@example.com", "notours"),
        ("c+aeasgrlhrgv4332rc2w5kqiav5fkkli@bounces.example.com", "notours"),
        ("not-a-token", "forged token=not-a-token"),  # a bare token, as if from a header
    ],
)
def test_verp_decode_exits_1_unless_valid(config_file, capsys, address, line):
    assert main.main(["verp", "decode", "--config", str(config_file(VALID)), address]) == commands.EXIT_FAILED
    assert capsys.readouterr().out == line + "\n"


def test_verp_decode_says_expired(config_file, capsys):
    path = str(config_file(VALID))
    assert main.main(["verp", "encode", "--config", path, "--date", "2001-02-03", "00000000000000ff"]) == commands.EXIT_OK
    address = capsys.readouterr().out.strip()
    assert main.main(["verp", "decode", "--config", path, address]) == commands.EXIT_FAILED
    assert capsys.readouterr().out.startswith("expired message_key=00000000000000ff issued=2001-02-03 token=")


@pytest.mark.parametrize("argv", [["--date", "2030-13-01"], ["0123"], ["zz23456789abcdef"]])
def test_verp_encode_refuses_bad_arguments(config_file, capsys, argv):
    with pytest.raises(SystemExit) as caught:
        main.main(["verp", "encode", "--config", str(config_file(VALID)), *argv])
    assert caught.value.code == commands.EXIT_USAGE


def test_verp_needs_a_domain_and_keys(config_file, capsys):
    path = str(config_file("database: x.db\n"))
    assert main.main(["verp", "encode", "--config", path]) == commands.EXIT_CONFIG
    assert main.main(["verp", "decode", "--config", path, "b+x@bounces.example.com"]) == commands.EXIT_CONFIG
    assert "verp.domain and verp.keys" in capsys.readouterr().err


def test_db_migrate_creates_the_schema(config_file, tmp_path, capsys):
    from bouncefilter import store

    path = str(config_file("database: data/b.db\n"))
    (tmp_path / "data").mkdir()
    assert main.main(["db", "migrate", "--config", path]) == commands.EXIT_OK
    assert capsys.readouterr().out == f"{tmp_path / 'data' / 'b.db'}: schema {store.SCHEMA_VERSION}\n"
    assert main.main(["db", "migrate", "--config", path]) == commands.EXIT_OK  # again: nothing to do
    assert main.main(["db", "migrate", "--config", str(config_file("database: nowhere/b.db\n", "other.yaml"))]) \
        == commands.EXIT_FAILED
    assert "nowhere/b.db" in capsys.readouterr().err


def test_milter_refuses_a_bad_socket_argument():
    done = run(["milter", "--socket", "/run/milter.sock"])
    assert done.returncode == commands.EXIT_USAGE
    assert "expected unix:/PATH or inet:PORT@HOST" in done.stderr


def test_milter_exits_78_on_a_bad_configuration(config_file):
    done = run(["milter", "--config", str(config_file("milter: {on_error: bounce}\n"))])
    assert done.returncode == commands.EXIT_CONFIG
    assert "milter.on_error" in done.stderr


def test_milter_exits_1_when_the_socket_folder_is_missing(config_file, tmp_path):
    path = config_file(f"database: {tmp_path}/b.db\nlogging: {{target: stderr}}\n")
    done = run(["milter", "--config", str(path), "--socket", f"unix:{tmp_path}/missing/milter.sock"])
    assert done.returncode == commands.EXIT_FAILED
    assert f"cannot start: the folder of the socket {tmp_path}/missing/milter.sock does not exist" in done.stderr


@pytest.mark.parametrize(
    ("argv", "call"),
    [
        (["pipe", "", "b+t@x"], Arguments("", "b+t@x")),
        (["--config", "c.yaml", "pipe", "--queue-id", "Q", "s", "r"], Arguments("s", "r", "Q", "c.yaml")),
        (["--config=c.yaml", "pipe", "--config", "d.yaml", "s", "r"], Arguments("s", "r", "", "d.yaml")),
        # The last two arguments are always SENDER and RECIPIENT, whatever they look like.
        (["--config=c.yaml", "pipe", "--help", "r"], Arguments("--help", "r", "", "c.yaml")),
        (["pipe", "--queue-id", "Q", "-s", "-r"], Arguments("-s", "-r", "Q")),
        (["pipe", "--bogus", "s", "r"], Arguments("s", "r", problem=f"unknown option '--bogus'; {USAGE}")),
        (["pipe", "--queue-id", "s", "r"], Arguments("s", "r", problem=f"--queue-id needs a value; {USAGE}")),
        (["pipe", "Q", "s", "r"], Arguments("s", "r", problem=f"unexpected 'Q'; {USAGE}")),
        (["pipe", "r"], Arguments(problem=USAGE)),
        # Not the pipe's command line, or its help: the argument parser's.
        (["pipe", "--help"], None),
        (["--config", "c.yaml", "pipe", "-h"], None),
        (["classify", "pipe"], None),
        (["--configx", "pipe", "s", "r"], None),
        (["--config"], None),
    ],
)
def test_the_pipe_command_line_is_read_once_before_the_parser_is_built(argv, call):
    assert command.parse(argv) == call


def test_the_pipe_never_exits_2_on_a_usage_error(capsys):
    assert main.main(["pipe", "--no-such-option"]) == 75
    out = capsys.readouterr().out
    assert out.startswith("4.3.0 ") and out.count("\n") == 1


def test_the_pipe_defers_with_one_line_on_a_bad_configuration(config_file, capsys):
    path = str(config_file("verp: {prefx: c}\n"))
    assert main.main(["--config", path, "pipe", "--queue-id", "Q1", "", "b+x@bounces.example.com"]) == 75
    captured = capsys.readouterr()
    assert captured.out.startswith("4.3.0 bouncefilter: configuration: ") and "verp.prefx" in captured.out
    assert captured.out.count("\n") == 1


def test_check_config_writes_the_parsed_copy_for_the_pipe(config_file, capsys):
    path = config_file(VALID)
    assert main.main(["check-config", "--config", str(path)]) == commands.EXIT_OK
    assert f"# parsed copy for the pipe: {path}.cache\n" in capsys.readouterr().out
    Path(f"{path}.cache").unlink()
    Path(f"{path}.cache").mkdir()  # cannot be replaced: still valid, just slower
    assert main.main(["check-config", "--config", str(path)]) == commands.EXIT_OK
    assert "# no parsed copy for the pipe (" in capsys.readouterr().out


def test_the_pipe_command_is_written_the_same_everywhere(capsys):
    """The pipe's master.cf line has one path: contrib/postfix/master.cf's, which the
    Postfix lab runs, is also the one the README and ``pipe --help`` give."""
    root = Path(__file__).resolve().parent.parent
    master = (root / "contrib" / "postfix" / "master.cf").read_text(encoding="utf-8")
    argv = next(line.split("argv=", 1)[1].split()[0] for line in master.splitlines() if "argv=" in line)
    assert argv == "/opt/bouncefilter/bin/bouncefilter"
    with pytest.raises(SystemExit):
        main.main(["pipe", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    readme = " ".join((root / "README.md").read_text(encoding="utf-8").split())
    for text in (help_text, readme):
        assert f"argv={argv} pipe" in text
        assert "argv=/usr/bin/bouncefilter" not in text


def test_the_readme_gunicorn_line_trusts_the_proxy_for_the_secure_cookie():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    command = readme[readme.index("gunicorn --bind"):].split("```", 1)[0]
    assert "--forwarded-allow-ips=" in command


def test_make_demo_installs_none_of_the_test_tools():
    """A mail server that runs only the demo gets no browser, tracer or extra MTAs."""
    root = Path(__file__).resolve().parent.parent
    demo = subprocess.run(["make", "-n", "demo"], cwd=root, capture_output=True, text=True, check=True).stdout
    test = subprocess.run(["make", "-n", "test"], cwd=root, capture_output=True, text=True, check=True).stdout
    for tool in ("chromium", "strace", "libpython3.11-testsuite", "factory/install.sh"):
        assert tool not in demo
        assert tool in test


def test_classify_json_names_the_feedback_type_once(capsys):
    """The scoring interface's ``feedbacktype``, not beside it the record's own name."""
    fixture = Path(__file__).resolve().parent / "fixtures" / "arf" / "auth-failure-dmarc.eml"
    assert main.main(["classify", "--json", str(fixture)]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["feedbacktype"] == "auth-failure" and "feedback_type" not in row


# -- bouncefilter suppression ----------------------------------------------------------------


@pytest.fixture
def listing_site(tmp_path: Path):
    """A site (tests/support/forward_lab.py) whose one hard bounce listed nobody@example.net,
    with one target that wants suppression events and one that does not."""
    from support.forward_lab import make_site

    site = make_site(tmp_path, "{type: smtp, to: team@example.com}, {type: smtp, to: quiet@example.com,"
                     " suppressions: false}", suppression="{hard_after: 1}")
    site.bounce()
    return site


def suppression(site, *argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return run(["--config", str(site.config), "suppression", *argv], stdin)


def events(site) -> list[tuple[str, str, str, str]]:
    """(change, address, actor, target) of every suppression event queued, in order."""
    conn = site.conn()
    try:
        return conn.execute("SELECT h.change, h.address, h.actor, o.target FROM outbox o JOIN suppression_history h"
                            " ON h.id = o.history_id ORDER BY o.id").fetchall()
    finally:
        conn.close()


def test_suppression_add_list_remove_queue_events_for_the_targets_that_want_them(listing_site):
    site = listing_site
    added = suppression(site, "add", "--account", "SHOP", "Typed@Example.ORG", "--detail", "asked us",
                        "--until", "30d")
    assert (added.returncode, added.stdout) == (0, "listed: Typed@Example.ORG for shop\n")
    assert suppression(site, "add", "--account", "shop", "typed@example.org").stdout.startswith("already listed")
    table = suppression(site, "list").stdout.splitlines()
    assert table[0] == "account\taddress\treason\tdetail\tsince\tuntil\tlifted"
    assert [line.split("\t")[1:4] for line in table[1:]] == [
        ["nobody@example.net", "hard", "userunknown"], ["Typed@example.org", "manual", "asked us"]]
    (found,) = [json.loads(line) for line in suppression(site, "list", "--json", "--search", "TYPED").stdout.splitlines()]
    assert (found["reason"], found["lifted_at"]) == ("manual", None)
    assert 29 * 86400 < _epoch(found["until"]) - _epoch(found["created_at"]) <= 30 * 86400
    assert suppression(site, "list", "--reason", "hard").stdout.count("\n") == 2  # the header and one listing
    removed = suppression(site, "remove", "--account", "shop", "TYPED@example.org")
    assert (removed.returncode, removed.stdout) == (0, "lifted: TYPED@example.org for shop\n")
    again = suppression(site, "remove", "--account", "shop", "typed@example.org")
    assert again.returncode == 1 and "not on the suppression list of shop" in again.stderr
    assert "Typed@example.org" not in suppression(site, "list").stdout
    assert "Typed@example.org" in suppression(site, "list", "--lifted").stdout
    user = f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or __import__('getpass').getuser()}"
    assert events(site) == [
        ("created", "nobody@example.net", "pipe", "shop:smtp:team@example.com"),
        ("created", "Typed@example.org", user, "shop:smtp:team@example.com"),
        ("lifted", "Typed@example.org", user, "shop:smtp:team@example.com"),
    ]


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_suppression_remove_lifts_a_complaint_as_the_administrator(listing_site):
    conn = listing_site.conn()
    from bouncefilter import store

    assert store.suppressions.suppress(conn, "shop", "angry@example.com", "complaint", 1.0e9, "pipe")
    conn.close()
    done = suppression(listing_site, "remove", "--account", "shop", "angry@example.com")
    assert done.returncode == 0 and done.stdout == "lifted: angry@example.com for shop\n"


def test_suppression_explain_tells_the_whole_story_in_words_and_json(listing_site):
    site = listing_site
    text = suppression(site, "explain", "nobody@EXAMPLE.net").stdout
    lines = text.splitlines()
    assert lines[0] == "nobody@example.net"
    assert re.fullmatch(r"  shop: suppressed: hard \(userunknown\) since \S+Z, until lifted; records #1", lines[1])
    assert "messages sent (1):" in lines and "records (1):" in lines and "changes (1):" in lines
    assert "<order-1@shop.example.com>" in text and "5.1.1" in text and "created  hard (userunknown)  by pipe" in text
    told = json.loads(suppression(site, "explain", "nobody@example.net", "--json", "--account", "shop").stdout)
    assert set(told) == {"address", "suppressions", "messages", "records", "history"}
    assert [(s["reason"], s["bounce_ids"]) for s in told["suppressions"]] == [("hard", [1])]
    assert [r["reason"] for r in told["records"]] == ["userunknown"]
    unknown = suppression(site, "explain", "someone@example.com")
    assert unknown.returncode == 0 and "not on any suppression list" in unknown.stdout


def test_suppression_refuses_unknown_accounts_bad_addresses_and_past_moments(listing_site, config_file):
    site = listing_site
    for argv in (["list", "--account", "nope"], ["add", "--account", "nope", "a@example.com"],
                 ["explain", "--account", "nope", "a@example.com"]):
        done = suppression(site, *argv)
        assert done.returncode == 1 and "no account 'nope' in the configuration (accounts: shop)" in done.stderr
    for argv in (["add", "a@example.com"], ["add", "--account", "shop", "not-an-address"],
                 ["add", "--account", "shop", "a@example.com", "--until", "2020-01-01"],
                 ["add", "--account", "shop", "a@example.com", "--reason", "hard"],
                 ["remove", "a@example.com"], ["import", "-"]):
        done = suppression(site, *argv)
        assert done.returncode == 2, argv
    broken = config_file("database: [\n", name="broken.yaml")
    assert run(["--config", str(broken), "suppression", "list"]).returncode == 78


MAILGUN = b"""\
address,code,error,created_at
first@example.com,550,No such user,"Thu, 16 May 2024 08:00:00 UTC"
not-an-address,550,x,
"""
SES = b"""\
address,reason,created_at
second@example.com,BOUNCE,2024-05-16 09:30:00
third@example.com,COMPLAINT,2024-05-16T10:00:00Z
first@example.com,hard,
fourth@example.com,manual,2999-01-01T00:00:00Z
"""


def test_suppression_import_reads_mailgun_and_ses_csv_and_names_the_bad_lines(listing_site, tmp_path):
    site = listing_site
    path = tmp_path / "mailgun.csv"
    path.write_bytes(MAILGUN)
    done = suppression(site, "import", "--account", "shop", str(path))
    assert done.returncode == 1 and done.stdout == "shop: 1 added, 0 already listed, 1 bad line\n"
    assert done.stderr == f"bouncefilter: {path}:3: address: not a mail address (local@domain.tld): 'not-an-address'\n"
    done = suppression(site, "import", "--account", "shop", "-", stdin=SES)
    assert done.returncode == 1 and done.stdout == "shop: 2 added, 1 already listed, 1 bad line\n"
    assert "-:5: created_at: '2999-01-01T00:00:00Z' is in the future" in done.stderr
    rows = {r["address"]: r for r in map(json.loads, suppression(site, "list", "--json").stdout.splitlines())}
    assert {a: (r["reason"], r["detail"], r["created_at"]) for a, r in rows.items() if a != "nobody@example.net"} == {
        "first@example.com": ("import", "", "2024-05-16T08:00:00Z"),
        "second@example.com": ("import", "BOUNCE", "2024-05-16T09:30:00Z"),
        "third@example.com": ("complaint", "", "2024-05-16T10:00:00Z"),
    }
    assert [e[1] for e in events(site)][1:] == ["first@example.com", "second@example.com", "third@example.com"]


def test_suppression_import_reads_json_lines_and_arrays(listing_site):
    site = listing_site
    lines = b'{"address": "a@example.com", "reason": "soft", "until": "2999-01-01T00:00:00Z"}\nnot json\n' \
            b'{"address": "b@example.com", "created_at": 1715846400}\n'
    done = suppression(site, "import", "--account", "shop", "-", stdin=lines)
    assert done.returncode == 1 and done.stdout == "shop: 2 added, 0 already listed, 1 bad line\n"
    assert "-:2: bad JSON: Expecting value" in done.stderr
    array = b'[{"address": "c@example.com", "detail": "from the old system"}, {"reason": "manual"}]'
    done = suppression(site, "import", "--account", "shop", "-", stdin=array)
    assert done.returncode == 1 and "-:2: address: required" in done.stderr
    rows = {r["address"]: r for r in map(json.loads, suppression(site, "list", "--json").stdout.splitlines())}
    assert (rows["a@example.com"]["reason"], rows["a@example.com"]["until"]) == ("soft", "2999-01-01T00:00:00Z")
    assert (rows["b@example.com"]["reason"], rows["b@example.com"]["created_at"]) == ("import", "2024-05-16T08:00:00Z")
    assert rows["c@example.com"]["detail"] == "from the old system"


@pytest.mark.parametrize("form", [[], ["--json"]])
def test_suppression_export_is_read_back_by_import(listing_site, tmp_path, form):
    from support.forward_lab import make_site

    site = listing_site
    suppression(site, "add", "--account", "shop", "held@example.org", "--until", "2999-06-01", "--detail", "a, b")
    suppression(site, "import", "--account", "shop", "-", stdin=SES)
    exported = suppression(site, "export", *form)
    assert exported.returncode == 0
    if not form:
        assert exported.stdout.splitlines()[0] == "address,reason,created_at,account,detail,until"
        assert '"a, b"' in exported.stdout
    (tmp_path / "other").mkdir()
    other = make_site(tmp_path / "other", "{type: smtp, to: team@example.com}")
    done = suppression(other, "import", "--account", "shop", "-", stdin=exported.stdout.encode())
    assert (done.returncode, done.stdout, done.stderr) == (0, "shop: 5 added, 0 already listed, 0 bad lines\n", "")
    assert suppression(other, "export", *form).stdout == exported.stdout
