"""The ``bouncefilter`` program: which command runs, and its exit code.

Exit codes: 0 success; 1 a command failed (an input file could not be read, the milter
could not start, ``verp decode`` found no valid token, the database cannot be used);
2 usage error; 78 (EX_CONFIG) the configuration is missing or invalid
(:mod:`bouncefilter.cli.commands` returns them). ``bouncefilter pipe`` has its own
contract (0 or 75 only, :mod:`bouncefilter.pipe.delivery`): :func:`main` hands it over
before the argument parser (:mod:`bouncefilter.cli.parser`) is even imported, so that no
usage error can exit 2 and the pipe, which starts once per bounce, pays nothing for the
other commands. A plain ``classify`` skips the parser too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bouncefilter.pipe.command import Arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    ``bouncefilter pipe`` goes straight to :mod:`bouncefilter.pipe.delivery` (only its ``--help``
    goes through the parser). Run as the program (``argv`` not given), the pipe's
    process then ends at once with ``os._exit``, skipping the interpreter's teardown.
    """
    arguments = sys.argv[1:] if argv is None else list(argv)
    # Without the word, no pipe: the other commands (a classify above all, which starts
    # once per message when scripts score bounces) do not import the pipe's reader.
    if "pipe" in arguments:
        from bouncefilter.pipe import command

        pipe_call = command.parse(arguments)
        if pipe_call is not None:
            code = _pipe(pipe_call)
            if argv is None:
                os._exit(code)
            return code
    classify_call = _classify_call(arguments)
    if classify_call is not None:
        from bouncefilter.cli import commands

        return commands.classify_files(*classify_call)
    from bouncefilter.cli import parser

    args = parser.build().parse_args(arguments)
    return int(args.run(args))


def _pipe(call: Arguments) -> int:
    """The pipe's exit code for ``call``; 75 with the ``4.3.0`` line even when the pipe
    cannot be loaded (an upgrade half-way through replacing the files, a missing
    dependency): Postfix must keep the bounce, not bounce it."""
    try:
        from bouncefilter.pipe import delivery
    except Exception as exc:  # whatever it is, the contract holds
        print(f"4.3.0 bouncefilter: cannot load the pipe ({type(exc).__name__}: {exc}); try again later", flush=True)
        return 75
    return delivery.main(call)


def _classify_call(argv: Sequence[str]) -> tuple[list[str], bool] | None:
    """``(files, json)`` if ``argv`` is a plain ``classify [--json] [FILE...]``: it
    skips building the argument parser, which costs more than classifying a message."""
    if argv[:1] != ["classify"] or any(arg.startswith("-") and arg != "--json" for arg in argv[1:]):
        return None
    return [arg for arg in argv[1:] if arg != "--json"], "--json" in argv[1:]
