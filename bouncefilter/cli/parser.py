"""The ``bouncefilter`` command line: every subcommand, its options and all their help
text. Each subcommand names the function of :mod:`bouncefilter.cli.commands` that runs it
(``set_defaults(run=...)``); the type functions turn an option's text into its value or
a usage error.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import date

from bouncefilter import __version__
from bouncefilter.cli import commands


def build() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
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
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    classify = subcommands.add_parser(
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
    classify.set_defaults(run=commands.run_classify)

    check = subcommands.add_parser(
        "check-config", help="load and validate the configuration",
        description="Load the configuration, report the first problem by its dotted key, "
        "and print the effective settings. A valid file's parsed copy is written beside it "
        "(PATH.cache, same mode and owner), which spares each pipe process the YAML parser "
        "until the file changes: run it after every edit.",
        epilog="Exit codes: 0 valid, 78 missing or invalid.",
    )
    _add_config_option(check)
    check.set_defaults(run=commands.run_check_config)

    _add_milter(subcommands)
    _add_pipe(subcommands)
    _add_verp(subcommands)
    _add_db(subcommands)
    _add_reading(subcommands)
    _add_api(subcommands)
    _add_token(subcommands)
    _add_forward(subcommands)
    _add_suppression(subcommands)
    return parser


def _add_pipe(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bouncefilter.pipe.command import USAGE

    subcommands.add_parser(
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


def _add_reading(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bounces = subcommands.add_parser(
        "bounces", help="list the stored bounce records",
        description="List the rows the pipe stored, oldest first: a table, or with --json one "
        "JSON object per line (the classifier's fields plus id, received_at, account, token, "
        "outcome, ...). Only rows whose outcome is bounce, delay, delivered, complaint or "
        "autoreply carry a verified token (and, but for an auto-reply, name a recipient of the "
        "message); forged, expired, notoken, stranger, reply and unknown rows are kept for "
        "the record and never count against a recipient.",
        epilog="Exit codes: 0 ok, 1 the database cannot be used, 78 bad configuration.",
    )
    _add_config_option(bounces)
    _add_window(bounces)
    bounces.add_argument("--account", metavar="NAME", help="only this account's rows")
    bounces.add_argument("--json", action="store_true", help="print one JSON object per row per line")
    bounces.set_defaults(run=commands.run_bounces)
    report = subcommands.add_parser(
        "report", help="print an overview per account",
        description="Per account: messages sent, bounces (hard, soft), delays, complaints, "
        "auto-replies, bounce rate, top reasons, top recipient domains, latest hard bounces; "
        "then what no account owns (forged, expired, no token).",
        epilog="Exit codes: 0 ok, 1 the database cannot be used, 78 bad configuration.",
    )
    _add_config_option(report)
    _add_window(report, default_text="the last 30 whole UTC days, today included, as on the overview page")
    report.set_defaults(run=commands.run_report)


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


def _add_milter(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subcommands.add_parser(
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
    run.set_defaults(run=commands.run_milter)


def _add_verp(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verp = subcommands.add_parser(
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
    encode.set_defaults(run=commands.run_verp_encode)
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
    decode.set_defaults(run=commands.run_verp_decode)


def _add_db(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = subcommands.add_parser("db", help="manage the database", description="Manage the SQLite database.")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = actions.add_parser(
        "migrate", help="create the tables or bring them to the current schema",
        description="Create the database's tables, or bring an older database to the schema "
        "of this version, and print the schema version reached.",
        epilog="Exit codes: 0 ok, 1 the database cannot be opened or is newer than this "
        "program, 78 bad configuration.",
    )
    _add_config_option(migrate)
    migrate.set_defaults(run=commands.run_db_migrate)
    purge = actions.add_parser(
        "purge", help="delete what is older than the retention settings",
        description="Delete bounce records and sent messages older than retention.days, and raw "
        "messages older than retention.raw_days (except those a pending forward still needs), "
        "in short transactions; print how many rows went. Run it daily (timer or cron).",
        epilog="Exit codes: 0 ok, 1 the database cannot be used, 78 bad configuration.",
    )
    _add_config_option(purge)
    purge.set_defaults(run=commands.run_db_purge)


def _add_forward(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    forward = subcommands.add_parser(
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
                      help="list the given-up rows: id, target, attempts, the event (bounce=ID or "
                      "suppression=ID), its outcome and address, last error")
    what.add_argument("--retry", metavar="ID|all", type=_outbox_id,
                      help="make a dead row (or all of them) pending again, due now, with a fresh max_age")
    forward.set_defaults(run=commands.run_forward)


def _outbox_id(text: str) -> int | str:
    """An outbox row id, or ``all``."""
    if text == "all":
        return text
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a row id or all, got {text!r}")
    return int(text)


def _add_config_option(command: argparse.ArgumentParser) -> None:
    """Let ``--config`` follow the subcommand too; it overrides the one before it."""
    command.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="configuration file")


def _socket_spec(value: str) -> str:
    from bouncefilter import config

    for _, message in config.MilterSettings(socket=value).problems():
        raise argparse.ArgumentTypeError(message)
    return value


def _moment(value: str) -> float:
    """Epoch seconds for ``--since``/``--until``: an age (``7d``, ``12h``, ``30m``) back
    from now, a date (midnight UTC) or an RFC 3339 date and time with its zone, as the
    API reads its windows (:mod:`bouncefilter.core.window`)."""
    from bouncefilter.core import window

    try:
        return window.moment(value, "WHEN", now=time.time())
    except window.WindowError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _iso_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2024-01-31: {value!r}") from None


def _message_key(value: str) -> bytes:
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) != 8:
        raise argparse.ArgumentTypeError(f"expected 16 hex digits, got {value!r}")
    return key


def _add_api(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    api = subcommands.add_parser(
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
    api.set_defaults(run=commands.run_api)


def _add_token(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = subcommands.add_parser(
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
    create.set_defaults(run=commands.run_token_create)
    listing = actions.add_parser(
        "list", help="list the tokens",
        description="One line per token: key id, account (or admin), created, revoked, note.",
        epilog="Exit codes: 0 ok, 1 the database cannot be used, 78 bad configuration.",
    )
    _add_config_option(listing)
    listing.set_defaults(run=commands.run_token_list)
    revoke = actions.add_parser(
        "revoke", help="revoke a token",
        description="Revoke the token with KEY_ID (as token list shows it; the whole token works "
        "too). A revoked token is refused at once.",
        epilog="Exit codes: 0 revoked, 1 no such active token or the database cannot be used, "
        "78 bad configuration.",
    )
    _add_config_option(revoke)
    revoke.add_argument("key_id", metavar="KEY_ID", help="the token's key id (8 hex digits) or the token")
    revoke.set_defaults(run=commands.run_token_revoke)


def _listen(value: str) -> tuple[str, int]:
    """``--listen HOST:PORT`` as (host, port)."""
    from bouncefilter import config

    found = config.listen_address(value)
    if found is None:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT such as 127.0.0.1:8025, got {value!r}")
    return found


_LIST_EXITS = "Exit codes: 0 ok, 1 unknown account or the database cannot be used, 78 bad configuration."


def _add_suppression(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bouncefilter.core.suppression import REASONS

    suppression = subcommands.add_parser(
        "suppression", help="see and change the suppression list",
        description="Each account's suppression list: the addresses its mail is no longer sent to "
        "(the milter refuses them at RCPT TO), why and since when. The pipe lists an address after "
        "hard bounces, soft bounces that add up, or a complaint; people list and lift by hand. "
        "Every listing and lifting is kept in the list's history and sent to the account's "
        "forwarding targets (suppression.created, suppression.lifted) unless a target says "
        "suppressions: false.",
    )
    actions = suppression.add_subparsers(dest="suppression_command", metavar="ACTION", required=True)
    every = "(default: every account)"
    listing = _action(
        actions, "list", commands.run_suppression_list, f"only this account's list {every}",
        help="list the suppressed addresses",
        description="List the addresses suppressed now, oldest listing first: a table (account, "
        "address, reason, detail, since, until, lifted), or with --json one JSON object per line "
        "(moments RFC 3339 UTC, bounce_ids the records that listed it).",
    )
    listing.add_argument("--reason", choices=REASONS, help="only addresses listed for this reason")
    listing.add_argument("--search", metavar="TEXT", default="", help="only addresses containing TEXT (case ignored)")
    listing.add_argument("--lifted", action="store_true",
                         help="also the listings lifted or lapsed since (every address ever listed)")
    listing.add_argument("--json", action="store_true", help="print one JSON object per listing per line")
    explain = _action(
        actions, "explain", commands.run_suppression_explain, f"only this account's story {every}",
        help="tell an address's whole story",
        description="Why ADDRESS is (or was) suppressed: its listings (why, since, until, the records "
        "that listed it, who lifted it), the messages sent to it, every stored record about it and "
        "every change to the list, newest first; in words, or with --json one JSON object "
        "(address, suppressions, messages, records, history).",
    )
    explain.add_argument("address", metavar="ADDRESS", help="the address (case of the domain ignored)")
    explain.add_argument("--json", action="store_true", help="print the story as one JSON object")
    add = _action(
        actions, "add", commands.run_suppression_add, "the account whose list it goes on", required=True,
        help="suppress an address by hand",
        description="Put ADDRESS on the account's suppression list (the milter refuses it within a "
        "second), until lifted or until --until. An address listed already is left as it is.",
    )
    add.add_argument("address", metavar="ADDRESS", type=_address, help="the address to suppress")
    add.add_argument("--reason", choices=("manual", "import"), default="manual", help="why (default: manual)")
    add.add_argument("--detail", metavar="TEXT", default="", help="a note kept with the listing")
    add.add_argument("--until", metavar="WHEN", type=_ahead,
                     help="lapse by itself then: YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] with Z or +HH:MM, or an age "
                     "such as 30d counted ahead from now (default: until lifted)")
    remove = _action(
        actions, "remove", commands.run_suppression_remove, "the account whose list it is on", required=True,
        help="lift an address off the list",
        description="Lift ADDRESS off the account's suppression list, as the administrator: "
        "complaints too (an account's API token cannot lift those). Recorded as cli:$USER.",
        epilog="Exit codes: 0 lifted, 1 not listed, unknown account or the database cannot be used, "
        "78 bad configuration.",
    )
    remove.add_argument("address", metavar="ADDRESS", help="the address to lift")
    load = _action(
        actions, "import", commands.run_suppression_import, "the account whose list they go on", required=True,
        help="suppress the addresses of a CSV or JSON file",
        description="List every address in FILE (- for standard input) on the account's list: a CSV "
        "with a header row as Mailgun and SES export it (address,reason,created_at; detail and until "
        "columns too), a JSON array of objects or one JSON object a line with the same fields. A reason "
        "other than hard, soft, complaint, manual or import is listed as import, the original kept as "
        "the detail; created_at keeps the listing's date. Prints how many were added and already "
        "listed; each bad line goes to standard error with its number, and the good ones are added.",
        epilog="Exit codes: 0 ok, 1 a line was bad (the others are added), the file cannot be read, unknown "
        "account or the database cannot be used, 78 bad configuration.",
    )
    load.add_argument("file", metavar="FILE", help="the file, or - for standard input")
    export = _action(
        actions, "export", commands.run_suppression_export, f"only this account's list {every}",
        help="print the suppressed addresses as CSV or JSON lines",
        description="Print the addresses suppressed now as CSV (address,reason,created_at,account,detail,"
        "until; moments RFC 3339 UTC) or with --json one JSON object per line; suppression import "
        "reads either back.",
    )
    export.add_argument("--json", action="store_true", help="print one JSON object per listing per line")


def _action(actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
            run: Callable[[argparse.Namespace], int], account: str, required: bool = False, *, help: str,
            description: str, epilog: str = _LIST_EXITS) -> argparse.ArgumentParser:
    """One ``suppression`` action that ``run`` runs, with ``--config`` and ``--account NAME``
    (``account`` its help; an account the configuration lacks is an error naming them)."""
    action = actions.add_parser(name, help=help, description=description, epilog=epilog)
    _add_config_option(action)
    action.add_argument("--account", metavar="NAME", required=required, help=account)
    action.set_defaults(run=run)
    return action


def _address(value: str) -> str:
    """An address to list: ``local@domain.tld``, angle brackets taken off."""
    from bouncefilter.core import listfile

    try:
        return listfile.address(value)
    except listfile.Refused as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _ahead(value: str) -> float:
    """Epoch seconds for ``--until``: the forms of ``--since``, an age counted ahead from
    now; a moment that has passed is refused."""
    from bouncefilter.core import window

    now = time.time()
    try:
        try:
            moment = window.moment(value, "WHEN")
        except window.WindowError:
            moment = 2 * now - window.moment(value, "WHEN", now=now)  # an age, mirrored ahead
    except window.WindowError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if moment <= now:
        raise argparse.ArgumentTypeError(f"{value!r} has passed already")
    return moment
