"""Shared pytest fixtures. Keep each small; helpers for one module belong in its test file."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from support import postfix_lab as lab_harness
from support import sendmail_lab

#: The checkout's root folder.
ROOT = Path(__file__).resolve().parent.parent

#: The classifier's loggers (a name covers the modules under it: ``bouncefilter.classify``
#: every parser and format module). The classifier never raises: it logs a parser's
#: exception at ERROR and carries on, so such a record is how a test learns that a parser
#: crashed.
CLASSIFIER_LOGGERS = ("bouncefilter.classify", "bouncefilter.core")
#: The marker of a test that provokes a parser bug on purpose (it must also log one).
PARSER_BUG_EXPECTED = "parser_bug_expected"
#: Where a test item keeps the records its ``parser_bugs`` fixture gathers.
PARSER_BUGS = pytest.StashKey[list[logging.LogRecord]]()


class ParserBugs(logging.Handler):
    """Gathers the classifier's records at ERROR and above: the exceptions it swallowed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name
        if record.levelno >= self.level and any(name == n or name.startswith(n + ".") for n in CLASSIFIER_LOGGERS):
            self.records.append(record)


def parser_bug_report(records: list[logging.LogRecord]) -> str | None:
    """What went wrong, one block per record (message, exception, traceback), or
    ``None`` when nothing was logged. The message names the parser ("parser dsn failed;
    trying the next one"); the exception and its traceback say where it raised."""
    if not records:
        return None
    blocks = []
    for record in records:
        head = f"{record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            head += f": {type(error).__name__}: {error}"
            head += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        blocks.append(head)
    return f"the classifier swallowed {len(records)} error(s):\n" + "\n\n".join(blocks)


@pytest.fixture(autouse=True)
def parser_bugs(request: pytest.FixtureRequest) -> Iterator[list[logging.LogRecord]]:
    """The errors the classifier logged during this test (see :func:`pytest_runtest_call`).

    Watched in every test: one that logs such an error fails, unless it is marked
    ``parser_bug_expected``, in which case it should assert on this list itself."""
    handler = ParserBugs()
    # On the package's logger, not the root one: the pipe replaces the root's handlers.
    logger = logging.getLogger("bouncefilter")
    logger.addHandler(handler)
    request.node.stash[PARSER_BUGS] = handler.records
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail a test in which the classifier swallowed an exception (a parser raised, or
    completing its findings did), naming the parser and the exception; a test marked
    ``parser_bug_expected`` fails instead if no such error was logged."""
    try:
        outcome = yield
    except BaseException:
        report = parser_bug_report(item.stash.get(PARSER_BUGS, []))
        if report:  # the test failed anyway; the crash may be why
            item.add_report_section("call", "parser bugs", report)
        raise
    records = item.stash.get(PARSER_BUGS, [])
    if item.get_closest_marker(PARSER_BUG_EXPECTED):
        if not records:
            pytest.fail(f"marked {PARSER_BUG_EXPECTED}, but the classifier logged no error", pytrace=False)
        return outcome
    report = parser_bug_report(records)
    if report:
        pytest.fail(report, pytrace=False)
    return outcome


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[[str], Path]:
    """A factory: ``config_file(yaml_text)`` writes a configuration file and returns its path."""

    def write(text: str, name: str = "bouncefilter.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the tests marked ``postfix`` (``sendmail``) where no Postfix (Sendmail) lab can
    run, saying why."""
    for marker, reason in (("postfix", lab_harness.unavailable()), ("sendmail", sendmail_lab.unavailable())):
        if reason is None:
            continue
        for item in items:
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def postfix_lab() -> Iterator[lab_harness.PostfixLab]:
    """One throwaway Postfix with its smtp-sink peers for the whole run (tests/support/postfix_lab.py)."""
    reason = lab_harness.unavailable()
    if reason is not None:
        pytest.skip(reason)
    with lab_harness.PostfixLab() as lab:
        yield lab


@pytest.fixture
def lab(postfix_lab: lab_harness.PostfixLab) -> lab_harness.PostfixLab:
    """The session's Postfix lab, emptied (queue, sink, pipe deliveries) and back to its defaults."""
    postfix_lab.reset()
    return postfix_lab
