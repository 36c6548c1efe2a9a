"""CSV as the API sends it: a header row, CRLF line ends, UTF-8, in chunks, and no cell
that a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

#: How a cell opens when a spreadsheet would run it as a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[object]], flags: Iterable[str] = ()) -> Iterator[bytes]:
    """The CSV of ``rows`` under ``header``, 256 rows a chunk; the columns named in
    ``flags`` as ``true``/``false``. A text cell that opens like a formula (a diagnostic
    or subject is the remote side's text) gets a ``'`` in front, so that a spreadsheet
    shows it instead of running it; JSON keeps the exact text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    wanted = set(flags)
    places = [place for place, name in enumerate(header) if name in wanted]
    for count, row in enumerate(rows, 1):
        values = [cell(value) for value in row]
        for place in places:
            values[place] = "true" if values[place] else "false"
        writer.writerow(values)
        if count % 256 == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def cell(value: object) -> object:
    """``value``, with a ``'`` in front if it is text a spreadsheet would take for a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
