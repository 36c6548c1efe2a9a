"""The ``bouncefilter`` command. The only module that turns outcomes into exit codes.

Exit codes: 0 success; 1 a command failed (an input file could not be read, the milter
could not start, ``verp decode`` found no valid token, the database cannot be used);
2 usage error; 78 (EX_CONFIG) the configuration is missing or invalid. ``bouncefilter
pipe`` has its own contract (0 or 75 only, :mod:`bouncefilter.pipe.delivery`): :func:`main`
hands it over before building the argument parser, so that no usage error can exit 2.

Subcommands import what they need when they run, so that ``classify`` (and the pipe
transport, which starts once per bounce) pays for nothing it does not use.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from bouncefilter import __version__

#: ``typing`` and ``argparse`` cost milliseconds, and the pipe transport (which starts
#: once per bounce and never builds the parser) passes through here: import them for
#: the type checker, or where they are used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from datetime import date

    from bouncefilter import store
    from bouncefilter.config import Settings, VerpSettings
    from bouncefilter.core.verp import Verdict

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="bouncefilter",
        description="Bounce and complaint tracking for Postfix and Sendmail.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage error, 78 bad configuration.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config", metavar="PATH",
        help="configuration file (default: $BOUNCEFILTER_CONFIG, else /etc/bouncefilter/bouncefilter.yaml)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    classify = commands.add_parser(
        "classify", help="classify messages and print their bounce records",
        description="Classify each FILE (standard input when none is given) and print one "
        "record per bounced recipient. Needs no configuration.",
        epilog="Exit codes: 0 ok, 1 a file could not be read.",
    )
    classify.add_argument("files", nargs="*", metavar="FILE", help="message files (default: standard input)")
    classify.add_argument("--json", action="store_true", help="print one JSON object per record per line, in "
                          "the scoring interface (feedbacktype); a message with no bounce records (unknown, "
                          "a person's reply, a challenge request) prints nothing, where the table names its "
                          "outcome")
    classify.set_defaults(run=_run_classify)

    check = commands.add_parser(
        "check-config", help="load and validate the configuration",
        description="Load the configuration, report the first problem by its dotted key, "
        "and print the effective settings. A valid file's parsed copy is written beside it "
        "(PATH.cache, same mode and owner), which spares each pipe process the YAML parser "
        "until the file changes: run it after every edit.",
        epilog="Exit codes: 0 valid, 78 missing or invalid.",
    )
    _add_config_option(check)
    check.set_defaults(run=_run_check_config)

    _add_milter(commands)
    _add_pipe(commands)
    _add_verp(commands)
    _add_db(commands)
    _add_reading(commands)
    _add_api(commands)
    _add_token(commands)
    _add_forward(commands)
    return parser


def _add_pipe(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bouncefilter.pipe.command import USAGE

    commands.add_parser(
        "pipe", help="store one message from standard input (Postfix pipe transport)",
        usage=USAGE.removeprefix("usage: "),
        description="SENDER is the envelope sender (empty for a bounce), RECIPIENT the envelope "
        "recipient (PREFIX+TOKEN@DOMAIN), --queue-id the MTA's queue id for the log, --config "
        "the configuration file. Read one message for the bounce domain from standard input (up to "
        "pipe.max_bytes; a larger one is stored cut and marked), classify it, tie it to the "
        "sent message by the VERP token in RECIPIENT (or in the returned headers), and "
        "store it with one row per recipient event; a message delivered twice is stored "
        "once. Logs one line per row to syslog. For Postfix's master.cf: "
        "flags=Rq user=bouncefilter null_sender= argv=/opt/bouncefilter/bin/bouncefilter pipe "
        "--queue-id ${queue_id} ${sender} ${recipient}. The last two arguments are always "
        "SENDER and RECIPIENT.",
        epilog="Exit codes: 0 stored (or stored before); 75 try again later, with one line "
        "starting '4.3.0 ' on standard output (bad configuration, database locked, full or "
        "not migrated, any other failure). Never anything else.",
    )
    # Only ``pipe --help`` reaches this parser (it prints and exits): every other pipe
    # command line is read by bouncefilter.pipe.command alone (see main), so the options
    # are described here, not declared.


def _add_reading(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bounces = commands.add_parser(
        "bounces", help="list the stored bounce records",
        description="List the rows the pipe stored, oldest first: a table, or with --json one "
        "JSON object per line (the classifier's fields plus id, received_at, account, token, "
        "outcome, ...). Only rows whose outcome is bounce, delay, delivered, complaint or "
        "autoreply carry a verified token; forged, expired, notoken, reply and unknown rows "
        "are kept for the record and never count against a recipient.",
        epilog="Exit codes: 0 ok, 1 the database cannot be used, 78 bad configuration.",
    )
    _add_config_option(bounces)
    _add_window(bounces)
    bounces.add_argument("--account", metavar="NAME", help="only this account's rows")
    bounces.add_argument("--json", action="store_true", help="print one JSON object per row per line")
    bounces.set_defaults(run=_run_bounces)
    report = commands.add_parser(
        "report", help="print an overview per account",
        description="Per account: messages sent, bounces (hard, soft), delays, complaints, "
        "auto-replies, bounce rate, top reasons, top recipient domains, latest hard bounces; "
        "then what no account owns (forged, expired, no token).",
        epilog="Exit codes: 0 ok, 1 the database cannot be used, 78 bad configuration.",
    )
    _add_config_option(report)
    _add_window(report, default_text="the last 30 whole UTC days, today included, as on the overview page")
    report.set_defaults(run=_run_report)


def _add_window(command: argparse.ArgumentParser, default_text: str = "") -> None:
    """``--since`` and ``--until``: a date, a date and time with its zone, or an age;
    ``default_text`` says what the command reads when neither is given."""
    dates = "YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] with Z or +HH:MM, or an age like 7d or 12h"
    command.add_argument("--since", metavar="WHEN", type=_moment,
                         help=f"from this moment on, inclusive ({dates}; default: "
                         f"{default_text or 'the beginning'})")
    command.add_argument("--until", metavar="WHEN", type=_moment,
                         help="before this moment, exclusive (same forms; default: now"
                         f"{', or with neither ' + default_text if default_text else ''})")


def _add_milter(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "milter", help="run the outbound milter (foreground)",
        description="Run the outbound milter in the foreground: the accounts' mail gets signed "
        "VERP envelope senders and a tracking header, and is recorded in the database. "
        "SIGTERM lets messages in flight finish, then exits 0. Logs to syslog or standard "
        "error as the logging settings say.",
        epilog="Exit codes: 0 stopped by a signal, 1 could not start, 78 bad configuration.",
    )
    _add_config_option(run)
    run.add_argument("--socket", metavar="SOCKET", type=_socket_spec,
                     help="unix:/PATH or inet:PORT@HOST (default: milter.socket from the configuration)")
    run.set_defaults(run=_run_milter)


def _add_verp(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verp = commands.add_parser(
        "verp", help="make or check signed VERP addresses",
        description="Make a signed VERP address with the configured keys, or check one.",
    )
    actions = verp.add_subparsers(dest="verp_command", metavar="ACTION", required=True)
    encode = actions.add_parser(
        "encode", help="print a signed VERP address",
        description="Print PREFIX+TOKEN@DOMAIN for MESSAGE_KEY_HEX (16 hex digits; random when "
        "left out), issued today (UTC) or on --date, signed with the first key.",
        epilog="Exit codes: 0 ok, 2 bad arguments, 78 bad configuration (no verp.domain or keys).",
    )
    _add_config_option(encode)
    encode.add_argument("--date", type=_iso_date, metavar="YYYY-MM-DD", help="issue date (default: today, UTC)")
    encode.add_argument("message_key", nargs="?", type=_message_key, metavar="MESSAGE_KEY_HEX",
                        help="the message key, 16 hex digits (default: random)")
    encode.set_defaults(run=_run_verp_encode)
    decode = actions.add_parser(
        "decode", help="check a VERP address or token",
        description="Check ADDRESS (PREFIX+TOKEN@DOMAIN, or a bare token as in the "
        "X-Bouncefilter-Token header) against the configured keys and print one line: "
        "'valid message_key=HEX issued=YYYY-MM-DD token=TOKEN', 'expired ...' with the "
        "same fields, 'forged token=TOKEN' (no key signed it, or it is not shaped like a "
        "token of ours: the pipe stores such mail as forged too), or 'notours' (not this "
        "prefix and domain).",
        epilog="Exit codes: 0 valid, 1 expired, forged or notours, 78 bad configuration.",
    )
    _add_config_option(decode)
    decode.add_argument("address", metavar="ADDRESS", help="a VERP address or a bare token")
    decode.set_defaults(run=_run_verp_decode)


def _add_db(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = commands.add_parser("db", help="manage the database", description="Manage the SQLite database.")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = actions.add_parser(
        "migrate", help="create the tables or bring them to the current schema",
        description="Create the database's tables, or bring an older database to the schema "
        "of this version, and print the schema version reached.",
        epilog="Exit codes: 0 ok, 1 the database cannot be opened or is newer than this "
        "program, 78 bad configuration.",
    )
    _add_config_option(migrate)
    migrate.set_defaults(run=_run_db_migrate)
    purge = actions.add_parser(
        "purge", help="delete what is older than the retention settings",
        description="Delete bounce records and sent messages older than retention.days, and raw "
        "messages older than retention.raw_days (except those a pending forward still needs), "
        "in short transactions; print how many rows went. Run it daily (timer or cron).",
        epilog="Exit codes: 0 ok, 1 the database cannot be used, 78 bad configuration.",
    )
    _add_config_option(purge)
    purge.set_defaults(run=_run_db_purge)


def _add_forward(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    forward = commands.add_parser(
        "forward", help="deliver the outbox to the SMTP and web hook targets",
        description="Deliver the outbox rows the pipe queued to the accounts' forwarding targets "
        "(smtp, webhook). Without options it runs as a service until SIGTERM, waking when a "
        "row falls due; several may run at once. Failures are retried with backoff up to "
        "forward.max_age; refusals (SMTP 5xx, HTTP 4xx but 429) are given up at once and kept "
        "as dead rows.",
        epilog="Exit codes: 0 ok (stopped by a signal, drained, listed, retried), 1 the database "
        "cannot be used or --retry found no such dead row, 78 bad configuration.",
    )
    _add_config_option(forward)
    what = forward.add_mutually_exclusive_group()
    what.add_argument("--once", action="store_true", help="deliver what is due now, then exit (for a timer)")
    what.add_argument("--list-dead", action="store_true",
                      help="list the given-up rows: id, target, attempts, bounce, last error")
    what.add_argument("--retry", metavar="ID|all", type=_outbox_id,
                      help="make a dead row (or all of them) pending again, due now, with a fresh max_age")
    forward.set_defaults(run=_run_forward)


def _outbox_id(text: str) -> int | str:
    """An outbox row id, or ``all``."""
    import argparse

    if text == "all":
        return text
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a row id or all, got {text!r}")
    return int(text)


def _add_config_option(command: argparse.ArgumentParser) -> None:
    """Let ``--config`` follow the subcommand too; it overrides the one before it."""
    import argparse

    command.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="configuration file")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    ``bouncefilter pipe`` goes straight to :mod:`bouncefilter.pipe.delivery` (only its ``--help``
    goes through the parser). Run as the program (``argv`` not given), the pipe's
    process then ends at once with ``os._exit``, skipping the interpreter's teardown.
    """
    from bouncefilter.pipe import command

    arguments = sys.argv[1:] if argv is None else list(argv)
    pipe_call = command.parse(arguments)
    if pipe_call is not None:
        from bouncefilter.pipe import delivery

        code = delivery.main(pipe_call)
        if argv is None:
            os._exit(code)
        return code
    classify_call = _classify_call(arguments)
    if classify_call is not None:
        return _classify(*classify_call)
    args = build_parser().parse_args(arguments)
    return int(args.run(args))


def _classify_call(argv: Sequence[str]) -> tuple[list[str], bool] | None:
    """``(files, json)`` if ``argv`` is a plain ``classify [--json] [FILE...]``: it
    skips building the argument parser, which costs more than classifying a message."""
    if argv[:1] != ["classify"] or any(arg.startswith("-") and arg != "--json" for arg in argv[1:]):
        return None
    return [arg for arg in argv[1:] if arg != "--json"], "--json" in argv[1:]


def _run_classify(args: argparse.Namespace) -> int:
    return _classify(args.files, args.json)


def _classify(files: Sequence[str], as_json: bool) -> int:
    from bouncefilter.cli import output
    from bouncefilter.classify.pipeline import classify

    failed = False
    sources = files or ["-"]
    write = output.json_lines if as_json else output.table
    for name in sources:
        try:
            raw = sys.stdin.buffer.read() if name == "-" else _read(name)
        except OSError as exc:
            print(f"bouncefilter: {name}: {exc.strerror or exc}", file=sys.stderr)
            failed = True
            continue
        write(sys.stdout, name, classify(raw))
    sys.stdout.flush()
    return EXIT_FAILED if failed else EXIT_OK


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _run_check_config(args: argparse.Namespace) -> int:
    from bouncefilter import config

    path = config.locate(args.config)
    try:
        settings = config.load(path)
        keys = config.verp_keys(settings.verp)
    except config.ConfigError as exc:
        print(f"bouncefilter: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"# {path}: valid ({_count(len(keys), 'VERP key')}, {_count(len(settings.accounts), 'account')})")
    try:
        print(f"# parsed copy for the pipe: {config.write_cache(path)}")
    except (OSError, config.ConfigError) as exc:
        print(f"# no parsed copy for the pipe ({exc}): each bounce parses the YAML")
    print(config.describe(settings), end="")
    return EXIT_OK


def _load(args: argparse.Namespace) -> Settings | None:
    """The settings, or ``None`` after printing why they cannot be loaded."""
    from bouncefilter import config

    try:
        return config.load(config.locate(args.config))
    except config.ConfigError as exc:
        print(f"bouncefilter: {exc}", file=sys.stderr)
        return None


def _run_milter(args: argparse.Namespace) -> int:
    import logging

    from bouncefilter import config, logs

    settings = _load(args)
    if settings is None:
        return EXIT_CONFIG
    logs.configure(settings.logging, "bouncefilter/milter")
    from bouncefilter.milter import service

    try:
        service.serve(settings, args.socket)
    except (config.ConfigError, service.MilterStartError) as exc:
        logging.getLogger("bouncefilter.milter.service").error("cannot start: %s", exc)
        if settings.logging.target != "stderr":
            print(f"bouncefilter: {exc}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, config.ConfigError) else EXIT_FAILED
    return EXIT_OK


def _run_verp_encode(args: argparse.Namespace) -> int:
    import secrets
    from datetime import datetime, timezone

    from bouncefilter.core import verp

    loaded = _load_verp(args)
    if loaded is None:
        return EXIT_CONFIG
    settings, keys = loaded
    key = args.message_key or secrets.token_bytes(verp.KEY_BYTES)
    issued = args.date or datetime.now(timezone.utc).date()
    print(verp.address(settings.prefix, settings.domain or "", verp.make_token(key, issued, keys[0])))
    return EXIT_OK


def _run_verp_decode(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from bouncefilter.core import verp

    loaded = _load_verp(args)
    if loaded is None:
        return EXIT_CONFIG
    settings, keys = loaded
    today = datetime.now(timezone.utc).date()
    text, ttl = args.address.strip(), settings.max_age_days
    if "@" in text:
        verdict = verp.decode(text, settings.prefix, settings.domain or "", keys, today, ttl)
    else:
        verdict = verp.verify(text, keys, today, ttl)
    print(_verdict_line(verdict))
    return EXIT_OK if verdict.valid else EXIT_FAILED


def _load_verp(args: argparse.Namespace) -> tuple[VerpSettings, tuple[bytes, ...]] | None:
    """The VERP settings and keys, or ``None`` after printing why they cannot be used."""
    from bouncefilter import config

    settings = _load(args)
    if settings is None:
        return None
    try:
        keys = config.signing_keys(settings.verp)
    except config.ConfigError as exc:
        print(f"bouncefilter: {exc}", file=sys.stderr)
        return None
    if not settings.verp.domain or not keys:
        print("bouncefilter: verp.domain and verp.keys (or verp.keys_file) must be set", file=sys.stderr)
        return None
    return settings.verp, keys


def _verdict_line(verdict: Verdict) -> str:
    """``valid message_key=HEX issued=DATE token=TOKEN``, ``forged token=TOKEN`` or ``notours``."""
    fields = [verdict.status]
    if verdict.issued is not None:
        fields += [f"message_key={verdict.message_key}", f"issued={verdict.issued.isoformat()}"]
    if verdict.token and verdict.status != "notours":
        fields.append(f"token={verdict.token}")
    return " ".join(fields)


def _run_db_migrate(args: argparse.Namespace) -> int:
    from bouncefilter import store

    settings = _load(args)
    if settings is None:
        return EXIT_CONFIG
    try:
        conn = store.connect(settings.database)
        try:
            reached = store.migrate(conn)
        finally:
            conn.close()
    except (store.StoreError, store.DatabaseError, OSError) as exc:
        print(f"bouncefilter: database {settings.database}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{settings.database}: schema {reached}")
    return EXIT_OK


def _with_database(args: argparse.Namespace, work: Callable[[Settings, store.Connection], None]) -> int:
    """Load the settings, open the database at the current schema (migrating it if
    configured so), run ``work`` and close it; the exit code, after printing why on
    standard error if something failed."""
    from bouncefilter import store

    settings = _load(args)
    if settings is None:
        return EXIT_CONFIG
    try:
        conn = store.connect(settings.database, settings.database_busy_timeout_ms)
        try:
            store.ensure_schema(conn, settings.database_auto_migrate)
            work(settings, conn)
        finally:
            conn.close()
    except (store.StoreError, store.DatabaseError, OSError) as exc:
        print(f"bouncefilter: database {settings.database}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except LookupError as exc:  # what ``work`` was asked for is not there
        print(f"bouncefilter: {exc.args[0]}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _run_db_purge(args: argparse.Namespace) -> int:
    import time

    from bouncefilter import store

    def purge(settings: Settings, conn: store.Connection) -> None:
        purged = store.purge(conn, time.time(), settings.retention.days, settings.retention.raw_days)
        print(f"{settings.database}: deleted {purged.bounces} bounce records, {purged.raw_messages} raw messages, "
              f"{purged.messages} sent messages")

    return _with_database(args, purge)


def _run_bounces(args: argparse.Namespace) -> int:
    from bouncefilter import store
    from bouncefilter.cli import report

    if not _window_ok(args):
        return EXIT_USAGE

    def list_rows(settings: Settings, conn: store.Connection) -> None:
        write = report.json_lines if args.json else report.table
        account = settings.named_account(args.account).name if args.account else None
        try:
            write(sys.stdout, store.bounces(conn, args.since, args.until, account))
            sys.stdout.flush()
        except BrokenPipeError:  # the reader stopped early (| head): not a failure
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    return _with_database(args, list_rows)


def _run_report(args: argparse.Namespace) -> int:
    import time

    from bouncefilter.cli import report

    from bouncefilter.core import window

    if args.since is None and args.until is None:
        args.since, args.until = window.last_days(time.time())
    elif args.until is None:
        args.until = time.time()
    elif args.since is None:
        args.since = args.until - window.DEFAULT_DAYS * 86400
    if not _window_ok(args):
        return EXIT_USAGE

    def overview(settings: Settings, conn: store.Connection) -> None:
        report.overview(sys.stdout, conn, settings, args.since, args.until)

    return _with_database(args, overview)


def _window_ok(args: argparse.Namespace) -> bool:
    """Whether ``--since``/``--until`` make a window, as the API checks one (printing why
    not)."""
    from bouncefilter.core import window

    if args.since is None or args.until is None:
        return True
    try:
        window.window(args.since, args.until, "--since", "--until")
    except window.WindowError as error:
        print(f"bouncefilter: {error}", file=sys.stderr)
        return False
    return True


def _socket_spec(value: str) -> str:
    import argparse

    from bouncefilter import config

    for _, message in config.MilterSettings(socket=value).problems():
        raise argparse.ArgumentTypeError(message)
    return value


def _moment(value: str) -> float:
    """Epoch seconds for ``--since``/``--until``: an age (``7d``, ``12h``, ``30m``) back
    from now, a date (midnight UTC) or an RFC 3339 date and time with its zone, as the
    API reads its windows (:mod:`bouncefilter.core.window`)."""
    import argparse
    import time

    from bouncefilter.core import window

    try:
        return window.moment(value, "WHEN", now=time.time())
    except window.WindowError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _iso_date(value: str) -> date:
    import argparse
    from datetime import date

    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2024-01-31: {value!r}") from None


def _message_key(value: str) -> bytes:
    import argparse

    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) != 8:
        raise argparse.ArgumentTypeError(f"expected 16 hex digits, got {value!r}")
    return key


# -- the download API and its tokens ----------------------------------------------------------


def _add_api(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = commands.add_parser(
        "api", help="serve the download API and the overview page (foreground)",
        description="Serve the download API (GET /v1/bounces/START/END, /v1/stats/START/END, "
        "/healthz) and the overview page (/) with the standard library's threaded HTTP server, "
        "for trying it out. In production run bouncefilter.api.app:application under gunicorn "
        "(contrib/systemd/bouncefilter-api.service). Tokens: bouncefilter token. SIGTERM stops it.",
        epilog="Exit codes: 0 stopped by a signal, 1 the database cannot be used or the address "
        "cannot be had, 78 bad configuration.",
    )
    _add_config_option(api)
    api.add_argument("--listen", metavar="HOST:PORT", type=_listen,
                     help="where to listen (default: api.listen from the configuration, 127.0.0.1:8025)")
    api.set_defaults(run=_run_api)


def _add_token(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser(
        "token", help="manage the API's tokens",
        description="Make, list and revoke API tokens. A token sees its account's records "
        "only; an admin token sees every account. Only a hash of each token is stored.",
    )
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="make a token and print it",
        description="Make a token for a configured account (or an admin token) and print it, "
        "alone on standard output: it is shown this once and cannot be recovered.",
        epilog="Exit codes: 0 ok, 1 unknown account or the database cannot be used, 78 bad configuration.",
    )
    _add_config_option(create)
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--account", metavar="NAME", help="the account whose records the token sees")
    owner.add_argument("--admin", action="store_true", help="a token that sees every account")
    create.add_argument("--note", metavar="TEXT", default="", help="what the token is for (shown by token list)")
    create.set_defaults(run=_run_token_create)
    listing = actions.add_parser(
        "list", help="list the tokens",
        description="One line per token: key id, account (or admin), created, revoked, note.",
        epilog="Exit codes: 0 ok, 1 the database cannot be used, 78 bad configuration.",
    )
    _add_config_option(listing)
    listing.set_defaults(run=_run_token_list)
    revoke = actions.add_parser(
        "revoke", help="revoke a token",
        description="Revoke the token with KEY_ID (as token list shows it; the whole token works "
        "too). A revoked token is refused at once.",
        epilog="Exit codes: 0 revoked, 1 no such active token or the database cannot be used, "
        "78 bad configuration.",
    )
    _add_config_option(revoke)
    revoke.add_argument("key_id", metavar="KEY_ID", help="the token's key id (8 hex digits) or the token")
    revoke.set_defaults(run=_run_token_revoke)


def _run_api(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from bouncefilter import config, logs
    from bouncefilter.api import app
    from bouncefilter.api import server

    settings = _load(args)
    if settings is None:
        return EXIT_CONFIG
    if _with_database(args, lambda settings, conn: None) != EXIT_OK:
        return EXIT_FAILED
    logs.configure(settings.logging, "bouncefilter/api")
    host, port = args.listen or config.listen_address(settings.api.listen)
    try:
        serving = server.make_server(host, port, app.make_app(settings))
    except OSError as exc:
        print(f"bouncefilter: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    log = logging.getLogger("bouncefilter.api.app")
    stopping = []

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signal.Signals(signum).name)
        threading.Thread(target=serving.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    log.info("listening on %s:%d", host, port)
    print(f"bouncefilter api: listening on http://{host}:{port}/", file=sys.stderr, flush=True)
    try:
        serving.serve_forever()
    except KeyboardInterrupt:
        stopping.append("SIGINT")
    finally:
        serving.server_close()
    log.info("stopped on %s; no longer listening on %s:%d", stopping[0] if stopping else "request", host, port)
    return EXIT_OK


def _count(number: int, noun: str) -> str:
    """``1 VERP key``, ``2 VERP keys``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _run_token_create(args: argparse.Namespace) -> int:
    import time

    from bouncefilter.api import tokens

    def create(settings: Settings, conn: store.Connection) -> None:
        account = None
        if not args.admin:
            account = settings.named_account(args.account).name
        print(tokens.create(conn, account, time.time(), args.note))

    return _with_database(args, create)


def _run_token_list(args: argparse.Namespace) -> int:
    from bouncefilter import store
    from bouncefilter.core.window import iso

    def listing(settings: Settings, conn: store.Connection) -> None:
        print("key_id\taccount\tcreated\trevoked\tnote")
        for token in store.api_tokens(conn):
            revoked = "-" if token.revoked_at is None else iso(token.revoked_at)
            print(f"{token.key_id}\t{token.account or '(admin)'}\t{iso(token.created_at)}\t{revoked}\t{token.note or '-'}")

    return _with_database(args, listing)


def _run_token_revoke(args: argparse.Namespace) -> int:
    import time

    from bouncefilter import store
    from bouncefilter.api import tokens

    def revoke(settings: Settings, conn: store.Connection) -> None:
        key_id = tokens.key_id(args.key_id.strip()) or args.key_id.strip().lower()
        if not store.revoke_token(conn, key_id, time.time()):
            raise LookupError(f"no active token with key id {key_id!r} (see bouncefilter token list)")
        print(f"revoked {key_id}")

    return _with_database(args, revoke)


def _listen(value: str) -> tuple[str, int]:
    """``--listen HOST:PORT`` as (host, port)."""
    import argparse

    from bouncefilter import config

    found = config.listen_address(value)
    if found is None:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:8025, got {value!r}")
    return found
def _run_forward(args: argparse.Namespace) -> int:
    import time

    from bouncefilter import store

    code = EXIT_OK

    def list_dead(settings: Settings, conn: store.Connection) -> None:
        for row in store.dead_letters(conn):
            print(f"{row['id']}\t{row['target']}\tattempts={row['attempts']}\tbounce={row['bounce_id']}"
                  f"\t{row['outcome']} <{row['recipient']}>\t{row['last_error']}")

    def retry(settings: Settings, conn: store.Connection) -> None:
        nonlocal code
        changed = store.retry_dead(conn, time.time(), None if args.retry == "all" else args.retry)
        print(f"{changed} dead rows pending again")
        if args.retry != "all" and not changed:
            print(f"bouncefilter: no dead outbox row with id {args.retry}", file=sys.stderr)
            code = EXIT_FAILED

    if args.list_dead:
        return _with_database(args, list_dead)
    if args.retry is not None:
        return _with_database(args, retry) or code
    return _with_database(args, _forward_work(args.once))


def _forward_work(once: bool) -> Callable[[Settings, store.Connection], None]:
    """Run a forwarder on the open database: drain once, or serve until SIGTERM/SIGINT."""

    def work(settings: Settings, conn: store.Connection) -> None:
        import logging
        import signal
        import threading

        from bouncefilter import logs
        from bouncefilter.forward.forwarder import Forwarder

        logs.configure(settings.logging, "bouncefilter/forward")
        stop = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda *_: stop.set())
        forwarder = Forwarder(settings, conn)
        if once:
            try:
                counts = forwarder.run_once(stop)
            finally:
                forwarder.close()
        else:
            logging.getLogger("bouncefilter.forward.forwarder").info("forwarding from %s", settings.database)
            counts = forwarder.serve(stop)
        logging.getLogger("bouncefilter.forward.forwarder").info(
            "delivered %d, retried %d, dead %d", counts.delivered, counts.retried, counts.dead)

    return work
