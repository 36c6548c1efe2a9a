"""The ``bouncefilter`` command. The only module that turns outcomes into exit codes.

Exit codes: 0 success; 1 a command failed (an input file could not be read); 2 usage
error; 78 (EX_CONFIG) the configuration is missing or invalid. ``bouncefilter pipe``
has its own contract (0 or 75 only) described in its help.

Subcommands import what they need when they run, so that ``classify`` (and the pipe
transport, which starts once per bounce) pays for nothing it does not use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bouncefilter import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    classify = commands.add_parser(
        "classify", help="classify messages and print their bounce records",
        description="Classify each FILE (standard input when none is given) and print one "
        "record per bounced recipient. Needs no configuration.",
        epilog="Exit codes: 0 ok, 1 a file could not be read.",
    )
    classify.add_argument("files", nargs="*", metavar="FILE", help="message files (default: standard input)")
    classify.add_argument("--json", action="store_true", help="print one JSON object per record per line")
    classify.set_defaults(run=_run_classify)

    check = commands.add_parser(
        "check-config", help="load and validate the configuration",
        description="Load the configuration, report the first problem by its dotted key, "
        "and print the effective settings.",
        epilog="Exit codes: 0 valid, 78 missing or invalid.",
    )
    _add_config_option(check)
    check.set_defaults(run=_run_check_config)
    return parser


def _add_config_option(command: argparse.ArgumentParser) -> None:
    """Let ``--config`` follow the subcommand too; it overrides the one before it."""
    command.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="configuration file")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


def _run_classify(args: argparse.Namespace) -> int:
    from bouncefilter import output
    from bouncefilter.classify import classify

    failed = False
    sources = args.files or ["-"]
    write = output.json_lines if args.json else output.table
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
    print(f"# {path}: valid ({len(keys)} VERP keys, {len(settings.accounts)} accounts)")
    print(config.describe(settings), end="")
    return EXIT_OK
