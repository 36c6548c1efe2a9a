"""The entry points' log format."""

from __future__ import annotations

import logging

import pytest

from bouncefilter.logs import StampFormatter

FORMAT = "%(asctime)s bouncefilter/milter[%(process)d]: %(levelname)s: %(message)s"


def _record(created: float) -> logging.LogRecord:
    record = logging.LogRecord("bouncefilter.milter.service", logging.INFO, __file__, 1, "%s: sent", ("4Q7RZ1X2Y3",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


@pytest.mark.parametrize("times", [
    (1_795_000_000.0, 1_795_000_000.999, 1_795_000_001.001),  # into the next second
    (1_795_000_001.5, 1_795_000_000.25),  # a record from an earlier second after a later one
    (1_795_000_000.0005,),
])
def test_the_time_stamp_worked_out_once_a_second_is_the_one_logging_would_write(times):
    cached, plain = StampFormatter(FORMAT), logging.Formatter(FORMAT)
    for created in times:
        assert cached.format(_record(created)) == plain.format(_record(created))


def test_an_explicit_date_format_is_honoured():
    record = _record(1_795_000_000.0)
    assert StampFormatter(FORMAT, "%Y").format(record) == logging.Formatter(FORMAT, "%Y").format(record)
