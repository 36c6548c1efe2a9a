"""Every fixture message against its expected classification, in three line-end styles.

``tests/fixtures/<group>/<name>.eml`` is classified and compared with
``<name>.json`` beside it: every key the JSON gives must equal the classifier's value
(keys left out are not checked), and ``records`` must match in length and order. Each
message is also classified with CRLF and with CR-only line ends, made at test time, and
must give the same result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bouncefilter.classify.pipeline import classify
from bouncefilter.core.record import Classification

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MESSAGES = sorted(FIXTURES.glob("*/*.eml"))
#: The keys an expectation file may hold at the top level.
TOP_KEYS = {"outcome", "parser", "records", "original"}
#: What every record of an expectation must state: what the bounce means, never left
#: for the classifier's current output to decide.
REQUIRED_RECORD_KEYS = ("reason", "hard")
#: sisimai's reasons for an address that is permanently bad (``hard``), unless the
#: status is temporary (4.x). Spelled out here, apart from bouncefilter.classify.reasons, so
#: that the expectations are checked against the taxonomy rather than against the code.
HARD_REASONS = {"userunknown", "hostunknown", "hasmoved", "notaccept"}
#: Line-end variants: the file as written, then rewritten to CRLF and to CR alone.
LINE_ENDS = {"asis": b"", "crlf": b"\r\n", "cr": b"\r"}


def fixture_id(path: Path) -> str:
    """``group/name`` for a fixture message."""
    return f"{path.parent.name}/{path.stem}"


def with_line_ends(raw: bytes, style: str) -> bytes:
    """``raw`` with every line end (LF, CRLF or CR) rewritten to ``style``."""
    if style == "asis":
        return raw
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return lines.replace(b"\n", LINE_ENDS[style])


def expectation(path: Path) -> dict[str, Any]:
    """The parsed ``.json`` beside a fixture message."""
    expected: dict[str, Any] = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    unknown = set(expected) - TOP_KEYS
    assert not unknown, f"unknown keys in {path.with_suffix('.json').name}: {sorted(unknown)}"
    return expected


def mismatches(result: Classification, expected: dict[str, Any]) -> list[str]:
    """Every way ``result`` differs from ``expected``, as readable lines."""
    problems = [
        f"{key}: expected {expected[key]!r}, got {getattr(result, key)!r}"
        for key in ("outcome", "parser")
        if key in expected and getattr(result, key) != expected[key]
    ]
    for key, want in expected.get("original", {}).items():
        got = getattr(result.original, key)
        if got != want:
            problems.append(f"original.{key}: expected {want!r}, got {got!r}")
    if "records" in expected:
        records = [record.to_dict() for record in result.records]
        if len(records) != len(expected["records"]):
            got = [(r["recipient"], r["reason"]) for r in records]
            problems.append(f"records: expected {len(expected['records'])}, got {len(records)}: {got}")
        for index, (want, got) in enumerate(zip(expected["records"], records)):
            problems += [
                f"records[{index}].{key}: expected {value!r}, got {got.get(key, '<no such field>')!r}"
                for key, value in want.items()
                if got.get(key, object()) != value
            ]
    return problems


def test_every_message_has_an_expectation() -> None:
    eml = {path.with_suffix("") for path in FIXTURES.glob("*/*.eml")}
    expected = {path.with_suffix("") for path in FIXTURES.glob("*/*.json")}
    assert sorted(map(str, eml ^ expected)) == []


def test_every_expected_record_states_reason_and_hard() -> None:
    unstated = [
        f"{fixture_id(path)}.json records[{index}]: no {' or '.join(missing)}"
        for path in MESSAGES
        for index, record in enumerate(expectation(path).get("records", []))
        if (missing := [key for key in REQUIRED_RECORD_KEYS if key not in record])
    ]
    assert unstated == [], "\n".join(unstated)


def test_every_expectation_says_which_records_it_expects() -> None:
    silent = [fixture_id(path) for path in MESSAGES if "records" not in expectation(path)]
    assert silent == [], "expectations without records (use [] for none): " + ", ".join(silent)


def test_expected_hard_follows_the_reason_and_the_status() -> None:
    """``hard`` is true exactly for a hard reason without a temporary (4.x) status (a delay
    notice's is always temporary)."""
    wrong = [
        f"{fixture_id(path)}.json records[{index}]: {record['reason']} {record.get('status', '')} "
        f"hard={record['hard']}"
        for path in MESSAGES
        for index, record in enumerate(expectation(path).get("records", []))
        if "reason" in record and "hard" in record
        and record["hard"] != (
            record["reason"] in HARD_REASONS and not record.get("status", "").startswith("4")
            and record.get("kind") != "delay"  # a delay's status is temporary whether stated or not
        )
    ]
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("style", list(LINE_ENDS))
@pytest.mark.parametrize("path", MESSAGES, ids=fixture_id)
def test_fixture(path: Path, style: str) -> None:
    expected = expectation(path)
    result = classify(with_line_ends(path.read_bytes(), style))
    problems = mismatches(result, expected)
    assert not problems, "\n".join(problems)
