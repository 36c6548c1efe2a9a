"""The test suite's guard against swallowed parser crashes (tests/conftest.py).

:func:`bouncefilter.classify.pipeline.classify` never raises: a parser that raises is logged
and skipped. Without a guard a parser that crashed on every message would leave the
fixture and fuzz suites green. These tests show the guard: a test in which the
classifier logs such an error fails and names the parser and the exception, and a test
marked ``parser_bug_expected`` passes only if such an error really was logged.
"""

from __future__ import annotations

import logging

import pytest

from bouncefilter.classify import pipeline

from conftest import ROOT, ParserBugs, parser_bug_report

pytest_plugins = ["pytester"]

DSN = ROOT / "tests" / "fixtures" / "dsn" / "postfix-user-unknown.eml"

#: An inner test module, run by pytester under a copy of the real tests/conftest.py.
INNER_TESTS = f'''
import pytest
from pathlib import Path

from bouncefilter.classify import pipeline

RAW = Path({str(DSN)!r}).read_bytes()


def crash(view):
    raise ZeroDivisionError("the dsn parser crashed on purpose")


def test_a_parser_crashes(monkeypatch):
    monkeypatch.setattr(pipeline, "STANDARD", (("arf", pipeline.STANDARD[0][1]), ("dsn", crash)))
    pipeline.classify(RAW)  # the test itself asserts nothing: only the guard can fail it


@pytest.mark.parser_bug_expected
def test_a_crash_on_purpose(monkeypatch, parser_bugs):
    monkeypatch.setattr(pipeline, "STANDARD", (("dsn", crash),))
    pipeline.classify(RAW)
    assert "parser dsn failed" in parser_bugs[0].getMessage()


@pytest.mark.parser_bug_expected
def test_a_marked_test_that_crashes_nothing():
    pipeline.classify(RAW)


def test_no_crash():
    assert pipeline.classify(RAW).outcome == "bounce"
'''


@pytest.fixture
def inner(pytester: pytest.Pytester, parser_bugs: list[logging.LogRecord]) -> pytest.RunResult:
    """The inner tests' run, under the real conftest with the marker registered.

    It runs in this process, so this test's own guard sees the inner crashes too: the
    tests that use it are marked ``parser_bug_expected``."""
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\naddopts = ["--strict-markers"]\n'
        'markers = ["parser_bug_expected: on purpose", "postfix: lab"]\n'
    )
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rA")
    assert [record.getMessage() for record in parser_bugs] == ["parser dsn failed; trying the next one"] * 2
    return result


@pytest.mark.parser_bug_expected
def test_a_test_in_which_a_parser_raised_fails_naming_parser_and_exception(inner: pytest.RunResult) -> None:
    outcomes = inner.parseoutcomes()
    assert outcomes.get("failed") == 2 and outcomes.get("passed") == 2, inner.stdout.str()
    inner.stdout.fnmatch_lines([
        "*test_a_parser_crashes*",
        "*bouncefilter.classify.pipeline: parser dsn failed; trying the next one: "
        "ZeroDivisionError: the dsn parser crashed on purpose*",
    ])
    # The traceback points at the line that raised.
    inner.stdout.fnmatch_lines(["*in crash*", "*raise ZeroDivisionError*"])


@pytest.mark.parser_bug_expected
def test_a_test_marked_parser_bug_expected_must_log_one(inner: pytest.RunResult) -> None:
    inner.stdout.fnmatch_lines([
        "*_ test_a_marked_test_that_crashes_nothing _*",
        "marked parser_bug_expected, but the classifier logged no error",
    ])
    inner.stdout.fnmatch_lines(["PASSED *test_a_crash_on_purpose*", "PASSED *test_no_crash*"])


@pytest.mark.parser_bug_expected
def test_the_report_names_the_parser_the_exception_and_where(
    monkeypatch: pytest.MonkeyPatch, parser_bugs: list[logging.LogRecord]
) -> None:
    def crash(view: object) -> None:
        raise KeyError("Final-Recipient")

    monkeypatch.setattr(pipeline, "STANDARD", (("dsn", crash),))
    pipeline.classify(DSN.read_bytes())
    report = parser_bug_report(parser_bugs)
    assert report is not None
    assert "parser dsn failed; trying the next one: KeyError: 'Final-Recipient'" in report
    assert "in crash" in report and "Traceback (most recent call last)" in report


def test_nothing_logged_is_no_report() -> None:
    assert parser_bug_report([]) is None


def test_errors_outside_the_classifier_are_not_parser_bugs() -> None:
    handler = ParserBugs()
    for name in ("bouncefilter.milter.service", "bouncefilter.pipe.delivery", "bouncefilter.classifyx"):
        handler.handle(logging.LogRecord(name, logging.ERROR, __file__, 1, "failed", (), None))
    handler.handle(logging.LogRecord("bouncefilter.classify.mta.exim", logging.ERROR, __file__, 1, "failed", (), None))
    handler.handle(logging.LogRecord("bouncefilter.classify.pipeline", logging.WARNING, __file__, 1, "odd", (), None))
    assert [record.name for record in handler.records] == ["bouncefilter.classify.mta.exim"]


def test_the_fixture_sees_what_this_test_logs(parser_bugs: list[logging.LogRecord]) -> None:
    logging.getLogger("bouncefilter.classify.dsn").error("looked at, then removed")
    assert [record.getMessage() for record in parser_bugs] == ["looked at, then removed"]
    parser_bugs.clear()  # so that the guard lets this test pass
