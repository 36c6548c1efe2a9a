"""What ``bouncefilter suppression list``, ``explain`` and ``export`` print: a table or JSON
lines of listings, one address's whole story in words or as one JSON object, and the
export (CSV ``address,reason,created_at,account,detail,until``, or JSON lines), which
``import`` reads back (:mod:`bouncefilter.core.listfile`).

The rows come from :mod:`bouncefilter.store.suppressions`; this module only formats them,
moments as RFC 3339 UTC.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TextIO

from bouncefilter.core.window import iso
from bouncefilter.store.suppressions import Suppression

#: The columns :func:`write_csv` writes, in order: what :mod:`bouncefilter.core.listfile` reads back.
EXPORT_COLUMNS = ("address", "reason", "created_at", "account", "detail", "until")
_TABLE_COLUMNS = ("account", "address", "reason", "detail", "since", "until", "lifted")


def _when(value: object, empty: str = "-") -> str:
    return iso(float(value)) if isinstance(value, (int, float)) else empty


def table(out: TextIO, listed: Iterable[Suppression]) -> None:
    """A header, then one tab-separated line per listing."""
    out.write("\t".join(_TABLE_COLUMNS) + "\n")
    for found in listed:
        lifted = f"{_when(found.lifted_at)} by {found.lifted_by}" if found.lifted_at is not None else "-"
        values = (found.account, found.address, found.reason, found.detail or "-", _when(found.created_at),
                  _when(found.until), lifted)
        out.write("\t".join(values) + "\n")


def json_lines(out: TextIO, listed: Iterable[Suppression]) -> None:
    """One JSON object per listing per line; moments as RFC 3339 UTC, ``null`` for none."""
    for found in listed:
        data = found._asdict()
        for name in ("created_at", "until", "lifted_at"):
            data[name] = None if data[name] is None else iso(data[name])
        data["bounce_ids"] = list(found.bounce_ids)
        out.write(json.dumps(data, ensure_ascii=False) + "\n")


def story(out: TextIO, told: Mapping[str, object], now: float) -> None:
    """``told`` (as :func:`bouncefilter.store.suppressions.story` gives it) in words:
    the listings (why, since, until, the records that listed it), then the messages sent
    to the address, the records about it and the changes to the list, newest first."""
    out.write(f"{told['address']}\n")
    listed = _rows(told["suppressions"])
    if not listed:
        out.write("  not on any suppression list\n")
    for row in listed:
        out.write(f"  {_listing(row, now)}\n")
    _section(out, "messages sent", told["messages"], lambda m: (
        f"{_when(m['sent_at'])}  {m['account']}  {m['message_id'] or '-'}  {m['subject'] or '(no subject)'}  from {m['sender'] or '<>'}"))
    _section(out, "records", told["records"], lambda r: (
        f"{_when(r['received_at'])}  #{r['id']}  {r['account'] or '(no account)'}  {r['outcome']}  {r['reason']}"
        f"{'  hard' if r['hard'] else ''}  {r['status'] or '-'}  {' '.join(str(r['diagnostic']).split())[:160]}"))
    _section(out, "changes", told["history"], lambda h: (
        f"{_when(h['at'])}  {h['account']}  {h['change']}  {h['reason']}{_paren(h['detail'])}"
        f"{'  until ' + _when(h['until']) if h['until'] is not None else ''}  by {h['actor']}"
        f"{'  (record #' + str(h['bounce_id']) + ')' if h['bounce_id'] is not None else ''}"))


def _listing(row: Mapping[str, object], now: float) -> str:
    """``shop: suppressed: hard (userunknown) since ..., until lifted; records #1, #4``."""
    until, lifted_at = row["until"], row["lifted_at"]
    if lifted_at is not None:
        state = f"lifted {_when(lifted_at)} by {row['lifted_by']}"
    elif isinstance(until, (int, float)) and until <= now:
        state = f"lapsed {_when(until)}"
    else:
        state = "suppressed"
    lasting = f"until {_when(until)}" if until is not None else "until lifted"
    ids = row["bounce_ids"]
    records = ", ".join(f"#{i}" for i in ids) if isinstance(ids, Sequence) and ids else "none (listed by hand)"
    return (f"{row['account']}: {state}: {row['reason']}{_paren(row['detail'])} since {_when(row['created_at'])},"
            f" {lasting}; records {records}")


def _paren(text: object) -> str:
    return f" ({text})" if text else ""


def _rows(value: object) -> list[Mapping[str, object]]:
    return list(value) if isinstance(value, list) else []


def _section(out: TextIO, title: str, rows: object, line: Callable[[Mapping[str, object]], str]) -> None:
    found = _rows(rows)
    out.write(f"{title} ({len(found)}):\n")
    for row in found:
        out.write(f"  {line(row)}\n")


def record(found: Suppression) -> dict[str, object]:
    """One listing as :func:`write_csv` and :func:`write_json` write it."""
    return {"address": found.address, "reason": found.reason,
            "created_at": None if found.created_at is None else iso(found.created_at),
            "account": found.account, "detail": found.detail,
            "until": None if found.until is None else iso(found.until)}


def write_csv(out: TextIO, listed: Iterable[Suppression]) -> None:
    """The header row, then one row per listing."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for found in listed:
        writer.writerow(["" if value is None else value for value in record(found).values()])


def write_json(out: TextIO, listed: Iterable[Suppression]) -> None:
    """One JSON object per listing per line."""
    for found in listed:
        out.write(json.dumps(record(found), ensure_ascii=False) + "\n")
