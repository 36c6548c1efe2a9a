"""Logging for the long-running entry points (milter, API, forwarder): syslog or stderr.

Only entry points call :func:`configure` (the CLI's commands and the WSGI server's
``bouncefilter.api.app:application``); every other module only logs, through
``logging.getLogger(__name__)``. The pipe transport sets up its own, cheaper logging.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from logging.handlers import SysLogHandler

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bouncefilter.config import LoggingSettings

SYSLOG_SOCKET = "/dev/log"


def configure(settings: LoggingSettings, ident: str) -> None:
    """Send the root logger to syslog (``settings.facility``; standard error, with a
    warning, when there is no /dev/log) or to standard error, each line tagged
    ``ident[pid]``, at ``settings.level``."""
    handler: logging.Handler
    fallback = settings.target == "syslog" and not os.path.exists(SYSLOG_SOCKET)
    if settings.target == "syslog" and not fallback:
        handler = SysLogHandler(SYSLOG_SOCKET, facility=SysLogHandler.facility_names[settings.facility])
        handler.setFormatter(logging.Formatter(f"{ident}[%(process)d]: %(levelname)s: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(StampFormatter(f"%(asctime)s {ident}[%(process)d]: %(levelname)s: %(message)s"))
    # What no format here shows, each record need not gather (the logging HOWTO's
    # "Optimization"): a busy milter logs a line per message.
    logging._srcfile = None  # caller's file and line
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    if fallback:
        logging.getLogger(__name__).warning("no %s: logging to standard error", SYSLOG_SOCKET)


class StampFormatter(logging.Formatter):
    """``logging.Formatter`` with its default time stamp, the date and time part of it
    worked out once a second instead of for every line."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return self.default_msec_format % (self._stamp, record.msecs)
