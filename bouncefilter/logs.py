"""Logging for the entry points: syslog (the mail facility by default) or standard error.

Only entry points set up handlers: the CLI's long-running commands (milter, API,
forwarder) and the WSGI server's ``bouncefilter.api.app:application`` call
:func:`configure`; the pipe transport, which must print its one ``4.3.0`` line before
anything else, :func:`hold` at its start and :func:`release` at its end. Every other
module only logs, through ``logging.getLogger(__name__)``.

Lines look like Postfix's own in the mail log: ``IDENT[PID]: warning: TEXT`` (info bare,
``warning:`` or ``error:`` before the rest). Syslog is written with the C library's
``syslog()``, not ``logging.handlers``, whose import (socket, pickle, queue) would cost
every pipe process milliseconds.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bouncefilter.config import LoggingSettings

SYSLOG_SOCKET = "/dev/log"
#: syslog(3) priorities by logging level (debug, info, warning; error for the rest).
_PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4}


def configure(settings: LoggingSettings, ident: str) -> None:
    """Send the root logger where ``settings`` say, each line tagged ``ident[pid]``, at
    ``settings.level``; standard error, with a warning, when syslog is asked for and
    there is no /dev/log."""
    fallback = settings.target == "syslog" and not os.path.exists(SYSLOG_SOCKET)
    # What no format here shows, each record need not gather (the logging HOWTO's
    # "Optimization"): a busy milter logs a line per message.
    logging._srcfile = None  # caller's file and line
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler(settings, ident)]
    root.setLevel(settings.level)
    if fallback:
        logging.getLogger(__name__).warning("no %s: logging to standard error", SYSLOG_SOCKET)


def handler(settings: LoggingSettings | None, ident: str) -> logging.Handler:
    """The handler ``settings`` ask for (syslog's mail facility when they are unknown)."""
    made: logging.Handler
    if (settings is None or settings.target == "syslog") and os.path.exists(SYSLOG_SOCKET):
        made = Syslog(ident, settings.facility if settings else "mail")
        made.setFormatter(PostfixFormatter(""))
    else:
        made = logging.StreamHandler(sys.stderr)
        made.setFormatter(PostfixFormatter(f"%(asctime)s {ident}[%(process)d]: "))
    return made


class Held(logging.Handler):
    """Keeps log records until :func:`release` writes them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def hold() -> Held:
    """Let the root logger keep every record until :func:`release` (the pipe's first
    output must be its exit line, not a log line)."""
    held = Held()
    root = logging.getLogger()
    root.handlers[:] = [held]
    root.setLevel(logging.DEBUG)
    return held


def release(held: Held, settings: LoggingSettings | None, ident: str) -> None:
    """Write the held records where ``settings`` say (syslog when they are unknown), at
    their level, and take the root logger's handlers away; never raises."""
    try:
        level = logging.getLevelName(settings.level) if settings else logging.INFO
        out = handler(settings, ident)
        for record in held.records:
            if record.levelno >= level:
                out.handle(record)
        out.flush()
    except Exception:  # noqa: S110 - nowhere left to report it; the exit status stands
        pass
    finally:
        logging.getLogger().handlers[:] = []


class Syslog(logging.Handler):
    """Writes to syslog with the C library's ``syslog()``."""

    def __init__(self, ident: str, facility: str) -> None:
        import syslog

        super().__init__()
        self._syslog = syslog
        syslog.openlog(ident, syslog.LOG_PID, getattr(syslog, f"LOG_{facility.upper()}"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._syslog.syslog(_PRIORITIES.get(record.levelno, 3), self.format(record))
        except Exception:  # logging must never fail the work
            self.handleError(record)


class PostfixFormatter(logging.Formatter):
    """``HEAD`` then, as Postfix writes them, ``warning: `` or ``error: `` before the
    message (info bare); the time stamp worked out once a second, not for every line."""

    _second = -1
    _stamp = ""

    def __init__(self, head: str) -> None:
        super().__init__(head + "%(message)s")
        self._head = head

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        marker = "" if record.levelno < logging.WARNING else "warning: " if record.levelno == logging.WARNING else "error: "
        text = self._head % record.__dict__ + marker + record.message
        return text.encode("utf-8", "backslashreplace").decode("utf-8")  # undecodable bytes stay visible

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return "%s,%03d" % (self._stamp, record.msecs)  # logging's default_msec_format
