"""The entry points' log lines: Postfix's shape, one handler stack for every entry point."""

from __future__ import annotations

import io
import logging

import pytest

from bouncefilter import logs
from bouncefilter.config import LoggingSettings

HEAD = "%(asctime)s bouncefilter/milter[%(process)d]: "


def _record(created: float, level: int = logging.INFO) -> logging.LogRecord:
    record = logging.LogRecord("bouncefilter.milter.service", level, __file__, 1, "%s: sent", ("4Q7RZ1X2Y3",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


@pytest.mark.parametrize("times", [
    (1_795_000_000.0, 1_795_000_000.999, 1_795_000_001.001),  # into the next second
    (1_795_000_001.5, 1_795_000_000.25),  # a record from an earlier second after a later one
    (1_795_000_000.0005,),
])
def test_the_time_stamp_worked_out_once_a_second_is_the_one_logging_would_write(times):
    cached, plain = logs.PostfixFormatter(HEAD), logging.Formatter(HEAD + "%(message)s")
    for created in times:
        assert cached.format(_record(created)) == plain.format(_record(created))


@pytest.mark.parametrize(("level", "marker"), [
    (logging.DEBUG, ""), (logging.INFO, ""), (logging.WARNING, "warning: "), (logging.ERROR, "error: "),
    (logging.CRITICAL, "error: "),
])
def test_warnings_and_errors_are_marked_as_postfix_marks_them(level, marker):
    assert logs.PostfixFormatter("").format(_record(1_795_000_000.0, level)) == f"{marker}4Q7RZ1X2Y3: sent"


def test_held_records_are_written_at_the_configured_level_and_the_handlers_go(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    held = logs.hold()
    log = logging.getLogger("bouncefilter.pipe.delivery")
    log.debug("not wanted")
    log.warning("%s: wanted", "4Q")
    assert err.getvalue() == ""  # held until released
    logs.release(held, LoggingSettings(target="stderr", level="INFO"), "bouncefilter/pipe")
    (line,) = err.getvalue().splitlines()
    assert line.endswith(" bouncefilter/pipe[%d]: warning: 4Q: wanted" % __import__("os").getpid())
    assert logging.getLogger().handlers == []


def test_syslog_is_written_through_the_c_library(monkeypatch, tmp_path):
    import syslog

    sent: list[tuple[int, str]] = []
    opened: list[tuple[object, ...]] = []
    monkeypatch.setattr(syslog, "openlog", lambda *args: opened.append(args))
    monkeypatch.setattr(syslog, "syslog", lambda priority, text: sent.append((priority, text)))
    monkeypatch.setattr(logs, "SYSLOG_SOCKET", str(tmp_path))  # any path that exists
    handler = logs.handler(LoggingSettings(target="syslog", facility="local3"), "bouncefilter/api")
    handler.handle(_record(1_795_000_000.0, logging.ERROR))
    assert opened == [("bouncefilter/api", syslog.LOG_PID, syslog.LOG_LOCAL3)]
    assert sent == [(syslog.LOG_ERR, "error: 4Q7RZ1X2Y3: sent")]
