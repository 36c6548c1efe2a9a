"""The pipe transport's command line, read once: ``[--config PATH] pipe [--config PATH]
[--queue-id ID] [--null-sender NAME] SENDER RECIPIENT``.

:func:`parse` is the only reader of it: the CLI asks it whether a command line runs the
pipe (and hands it over before building its argument parser, so that no usage error can
exit 2), and the pipe answers what it finds wrong with 75. The last two arguments are
always SENDER and RECIPIENT, even when one starts with ``-`` (an address may), so no
address can be mistaken for an option.

``--null-sender NAME``: a SENDER that is ``NAME`` (in any case) is the null sender and
becomes empty. Sendmail delivers its own DSNs with ``$f`` expanded to ``MAILER-DAEMON``
(its ``$n``), where Postfix's pipe(8) with ``null_sender=`` passes an empty argument: a
prog mailer's ``A=... --null-sender $n $f $u`` makes both look alike to the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Sequence

USAGE = "usage: bouncefilter pipe [--config PATH] [--queue-id ID] [--null-sender NAME] SENDER RECIPIENT"
_HELP = ("-h", "--help")


class Arguments(NamedTuple):
    """The pipe's command line; ``problem`` says what is wrong with it (empty if nothing)."""

    sender: str = ""
    recipient: str = ""
    queue_id: str = ""
    config: str | None = None
    problem: str = ""


def parse(argv: Sequence[str]) -> Arguments | None:
    """The pipe's arguments if ``argv`` (the command line after the program's name) runs
    ``pipe``; ``None`` if it runs another command or asks for the pipe's help."""
    options: dict[str, str | None] = {"--config": None}
    position = _options(argv, 0, options)
    if position is None or argv[position:position + 1] != ["pipe"]:
        return None
    rest = argv[position + 1:]
    if len(rest) == 1 and rest[0] in _HELP:
        return None
    if len(rest) < 2:
        return Arguments(config=options["--config"], problem=USAGE)
    *given, sender, recipient = rest
    values: dict[str, str | None] = {"--config": options["--config"], "--queue-id": None, "--null-sender": None}
    try:
        end = _options(given, 0, values, strict=True)
    except ValueError as problem:
        return Arguments(sender, recipient, config=values["--config"], problem=f"{problem}; {USAGE}")
    if end is not None and end != len(given):
        return Arguments(sender, recipient, config=values["--config"], problem=f"unexpected {given[end]!r}; {USAGE}")
    null = values["--null-sender"]
    if null and sender.lower() == null.lower():
        sender = ""
    return Arguments(sender, recipient, values["--queue-id"] or "", values["--config"])


def _options(argv: Sequence[str], position: int, values: dict[str, str | None], strict: bool = False) -> int | None:
    """Read ``--name VALUE`` / ``--name=VALUE`` options named in ``values`` from
    ``position`` on, into ``values``; the position of the first other argument.

    Another option ends the reading (``None`` unless ``strict``, which raises
    :class:`ValueError` naming it); so does an option without its value.
    """
    while position < len(argv) and argv[position].startswith("-"):
        name, equals, value = argv[position].partition("=")
        if name not in values:
            if strict:
                raise ValueError(f"unknown option {name!r}")
            return None
        if not equals:
            position += 1
            if position == len(argv):
                if strict:
                    raise ValueError(f"{name} needs a value")
                return None
            value = argv[position]
        values[name] = value
        position += 1
    return position
