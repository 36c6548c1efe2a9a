"""The ``bouncefilter`` commands: one function per command, given the parsed arguments and
returning the exit code (the only module that turns outcomes into exit codes).

Each command imports what it needs when it runs, so that ``classify`` pays for no
database and ``verp decode`` for no web server: a command's process starts quickly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator

    from bouncefilter import store
    from bouncefilter.config import Settings, VerpSettings
    from bouncefilter.core.verp import Verdict
    from bouncefilter.store.suppressions import Suppression

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78


def run_classify(args: argparse.Namespace) -> int:
    return classify_files(args.files, args.json)


def classify_files(files: Sequence[str], as_json: bool) -> int:
    from bouncefilter.classify.pipeline import classify
    from bouncefilter.cli import output

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


def run_check_config(args: argparse.Namespace) -> int:
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


def run_milter(args: argparse.Namespace) -> int:
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


def run_verp_encode(args: argparse.Namespace) -> int:
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


def run_verp_decode(args: argparse.Namespace) -> int:
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


def run_db_migrate(args: argparse.Namespace) -> int:
    from bouncefilter import store

    settings = _load(args)
    if settings is None:
        return EXIT_CONFIG
    try:
        conn = store.connect(settings.database, empty_ok=True)
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


def run_db_purge(args: argparse.Namespace) -> int:
    import time

    from bouncefilter import store

    def purge(settings: Settings, conn: store.Connection) -> None:
        purged = store.purge(conn, time.time(), settings.retention.days, settings.retention.raw_days)
        print(f"{settings.database}: deleted {purged.bounces} bounce records, {purged.raw_messages} raw messages, "
              f"{purged.messages} sent messages")

    return _with_database(args, purge)


def run_bounces(args: argparse.Namespace) -> int:
    from bouncefilter import store
    from bouncefilter.cli import report

    if not _window_ok(args):
        return EXIT_USAGE

    def list_rows(settings: Settings, conn: store.Connection) -> None:
        write = report.json_lines if args.json else report.table
        account = settings.named_account(args.account).name if args.account else None
        _printing(lambda: write(sys.stdout, store.bounces(conn, args.since, args.until, account)))

    return _with_database(args, list_rows)


def run_report(args: argparse.Namespace) -> int:
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


def run_api(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from bouncefilter import config, logs
    from bouncefilter.api import app, server

    settings = _load(args)
    if settings is None:
        return EXIT_CONFIG
    if _with_database(args, lambda settings, conn: None) != EXIT_OK:
        return EXIT_FAILED
    logs.configure(settings.logging, "bouncefilter/api")
    address = args.listen or config.listen_address(settings.api.listen)
    if address is None:  # check-config refuses such a file; said here too
        print(f"bouncefilter: api.listen: not HOST:PORT: {settings.api.listen!r}", file=sys.stderr)
        return EXIT_CONFIG
    host, port = address
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


def run_token_create(args: argparse.Namespace) -> int:
    import time

    from bouncefilter.api import tokens

    def create(settings: Settings, conn: store.Connection) -> None:
        account = None
        if not args.admin:
            account = settings.named_account(args.account).name
        print(tokens.create(conn, account, time.time(), args.note))

    return _with_database(args, create)


def run_token_list(args: argparse.Namespace) -> int:
    from bouncefilter import store
    from bouncefilter.core.window import iso

    def listing(settings: Settings, conn: store.Connection) -> None:
        print("key_id\taccount\tcreated\trevoked\tnote")
        for token in store.api_tokens(conn):
            revoked = "-" if token.revoked_at is None else iso(token.revoked_at)
            print(f"{token.key_id}\t{token.account or '(admin)'}\t{iso(token.created_at)}\t{revoked}\t{token.note or '-'}")

    return _with_database(args, listing)


def run_token_revoke(args: argparse.Namespace) -> int:
    import time

    from bouncefilter import store
    from bouncefilter.api import tokens

    def revoke(settings: Settings, conn: store.Connection) -> None:
        key_id = tokens.key_id(args.key_id.strip()) or args.key_id.strip().lower()
        if not store.revoke_token(conn, key_id, time.time()):
            raise LookupError(f"no active token with key id {key_id!r} (see bouncefilter token list)")
        print(f"revoked {key_id}")

    return _with_database(args, revoke)


def run_forward(args: argparse.Namespace) -> int:
    import time

    from bouncefilter import store

    code = EXIT_OK

    def list_dead(settings: Settings, conn: store.Connection) -> None:
        for row in store.dead_letters(conn):
            event = f"bounce={row['bounce_id']}" if row["history_id"] is None else f"suppression={row['history_id']}"
            print(f"{row['id']}\t{row['target']}\tattempts={row['attempts']}\t{event}"
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


def _actor() -> str:
    """``cli:USER``: who changed the suppression list from the command line ($USER, else
    the login name of the process's user, else its uid)."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no name in the environment nor the password file
        return f"cli:{os.getuid()}"


def _scope(settings: Settings, name: str | None) -> str | None:
    """The configured account ``name`` as the configuration spells it (``None`` for every
    account); :class:`LookupError` naming the accounts when there is no such account."""
    return settings.named_account(name).name if name else None


def _listed_now(conn: store.Connection, account: str | None, reason: str | None = None, search: str = "",
                lifted: bool = False) -> Iterator[Suppression]:
    import time

    from bouncefilter import store

    query = store.suppressions.ListQuery(time.time(), account, reason, search, lifted)
    return (found for _, found in store.suppressions.listings(conn, query))


def _printing(write: Callable[[], None]) -> None:
    """Run ``write`` (which prints to standard output); a reader that stops early (``| head``) is no failure."""
    try:
        write()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run_suppression_list(args: argparse.Namespace) -> int:
    from bouncefilter.cli import listing

    def show(settings: Settings, conn: store.Connection) -> None:
        found = _listed_now(conn, _scope(settings, args.account), args.reason, args.search, args.lifted)
        _printing(lambda: (listing.json_lines if args.json else listing.table)(sys.stdout, found))

    return _with_database(args, show)


def run_suppression_explain(args: argparse.Namespace) -> int:
    import json
    import time

    from bouncefilter import store
    from bouncefilter.cli import listing

    def explain(settings: Settings, conn: store.Connection) -> None:
        told = store.suppressions.story(conn, _scope(settings, args.account), args.address)
        if args.json:
            print(json.dumps(told, ensure_ascii=False, indent=2))
        else:
            listing.story(sys.stdout, told, time.time())

    return _with_database(args, explain)


def run_suppression_add(args: argparse.Namespace) -> int:
    import time

    from bouncefilter import store

    def add(settings: Settings, conn: store.Connection) -> None:
        account = _scope(settings, args.account) or ""
        listed = store.suppressions.suppress(conn, account, args.address, args.reason, time.time(), _actor(),
                                             args.detail, args.until, settings.suppression_targets(account))
        print(f"{'listed' if listed else 'already listed'}: {args.address} for {account}")

    return _with_database(args, add)


def run_suppression_remove(args: argparse.Namespace) -> int:
    import time

    from bouncefilter import store

    def remove(settings: Settings, conn: store.Connection) -> None:
        account = _scope(settings, args.account) or ""
        done = store.suppressions.lift(conn, account, args.address, time.time(), _actor(), True,
                                       settings.suppression_targets(account))
        if done != store.suppressions.LIFTED:
            raise LookupError(f"{args.address} is not on the suppression list of {account} (see bouncefilter"
                              " suppression explain)")
        print(f"lifted: {args.address} for {account}")

    return _with_database(args, remove)


def run_suppression_import(args: argparse.Namespace) -> int:
    import time

    from bouncefilter import store
    from bouncefilter.core import listfile
    from bouncefilter.core import suppression as rules

    code = EXIT_OK
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else _read(args.file)
        found = listfile.read(raw.decode("utf-8"), time.time(), default=rules.IMPORT)
    except (OSError, UnicodeDecodeError, listfile.ListFileError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else \
            f"not UTF-8 (octet {exc.start})" if isinstance(exc, UnicodeDecodeError) else str(exc)
        print(f"bouncefilter: {args.file}: {why or exc}", file=sys.stderr)
        return EXIT_FAILED

    def load(settings: Settings, conn: store.Connection) -> None:
        nonlocal code
        account = _scope(settings, args.account) or ""
        now = time.time()
        entries = [entry for _, entry in found.entries]
        added = store.suppressions.suppress_many(conn, account, entries, now, _actor(),
                                                 settings.suppression_targets(account))
        for bad in found.refused:
            print(f"bouncefilter: {args.file}:{bad.number}: {bad.why}", file=sys.stderr)
        print(f"{account}: {sum(added)} added, {len(added) - sum(added)} already listed,"
              f" {_count(len(found.refused), 'bad line')}")
        code = EXIT_FAILED if found.refused else EXIT_OK

    return _with_database(args, load) or code


def run_suppression_export(args: argparse.Namespace) -> int:
    from bouncefilter.cli import listing

    def export(settings: Settings, conn: store.Connection) -> None:
        found = _listed_now(conn, _scope(settings, args.account))
        _printing(lambda: (listing.write_json if args.json else listing.write_csv)(sys.stdout, found))

    return _with_database(args, export)
