"""How ``bouncefilter classify`` prints classifications: JSON lines or a table."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from bouncefilter.core.record import Classification

if TYPE_CHECKING:
    from typing import TextIO

_TABLE_COLUMNS = ("recipient", "kind", "reason", "hard", "status", "replycode", "parser")


def json_lines(out: TextIO, name: str, result: Classification) -> None:
    """One JSON object per record; the ``file`` key is the input's base name. A challenge
    request is no bounce, and the scoring interface prints nothing for a non-bounce: its
    record shows in the table only."""
    base = os.path.basename(name) if name != "-" else "-"
    for record in result.records:
        if record.kind == "challenge":
            continue
        data = record.to_dict()
        # The scoring interface (../shared/tools/score.py) calls it feedbacktype: one
        # name, not both.
        data["feedbacktype"] = data.pop("feedback_type")
        data["file"] = base
        out.write(json.dumps(data, ensure_ascii=False) + "\n")


def table(out: TextIO, name: str, result: Classification) -> None:
    """A readable block per message: its outcome, the original, then one row per record."""
    out.write(f"{name}: {result.outcome}")
    if result.parser:
        out.write(f" (parser {result.parser})")
    out.write("\n")
    if result.original.message_id or result.original.subject:
        out.write(f"  original: {result.original.message_id} {result.original.subject!r}\n")
    rows = [[str(getattr(r, c)).lower() if c == "hard" else str(getattr(r, c)) for c in _TABLE_COLUMNS] for r in result.records]
    if not rows:
        return
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(_TABLE_COLUMNS)]
    out.write("  " + "  ".join(c.ljust(w) for c, w in zip(_TABLE_COLUMNS, widths)).rstrip() + "\n")
    for row, record in zip(rows, result.records):
        out.write("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
        if record.diagnostic:
            out.write(f"    {record.diagnostic[:160]}\n")
