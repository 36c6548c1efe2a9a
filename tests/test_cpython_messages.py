"""CPython's own email test messages: the classifier claims only the real bounces.

CPython ships the messages its ``email`` package is tested with
(``test/test_email/data/msg_*.txt``: plain letters, multiparts of every shape, broken
MIME, a few delivery reports). They are a corpus of negatives nobody wrote for
bouncefilter, so a heuristic that reads too much into a word fails here. They are read
at run time from the system Python's ``test`` package (Debian:
``libpython3.11-testsuite``, which ``make test`` installs), never copied into this
repository.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bouncefilter.classify.pipeline import classify


def data_folder() -> Path | None:
    """The folder of CPython's email test messages for this interpreter, if installed."""
    try:
        spec = importlib.util.find_spec("test.test_email")
    except ImportError:  # no "test" package at all
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if any(folder.glob("msg_*.txt")) else None


DATA = data_folder()
MESSAGES = sorted(DATA.glob("msg_*.txt")) if DATA else []
needs_data = pytest.mark.skipif(
    DATA is None, reason="CPython's email test messages are not installed (Debian: libpython3.11-testsuite)"
)

#: The messages that really are bounces: RFC 3464 delivery-status reports that say a
#: message could not be delivered. Every other message must be left ``unknown``.
BOUNCES = {
    # Sun Internet Mail Server to a Mailman list: "Delivery has failed", a
    # message/DELIVERY-STATUS part with "Action: failed", recipient over disk quota.
    "msg_16.txt",
    # Sendmail's "Returned mail: Too many hops": Action failed, Status 5.4.6 (a
    # routing loop); its Content-Type lost the boundary, the report is still there.
    "msg_25.txt",
    # A spam firewall's "Banned file" report: a delivery-status part, Action failed,
    # 550 5.7.1 "Message content rejected" for each recipient.
    "msg_43.txt",
}
#: Looks like a report but is not one: msg_05.txt is multipart/report with
#: report-type=delivery-status whose parts are "Yadda yadda yadda" and a stub
#: message/rfc822, no delivery-status part, nobody a recipient: a MIME test, no bounce.
LOOKALIKES = {"msg_05.txt"}


@needs_data
def test_the_corpus_is_there_with_the_messages_named_here() -> None:
    names = {path.name for path in MESSAGES}
    assert len(names) >= 40
    assert BOUNCES | LOOKALIKES <= names


@needs_data
@pytest.mark.parametrize("path", [path for path in MESSAGES if path.name not in BOUNCES], ids=lambda path: path.name)
def test_a_message_that_is_no_bounce_is_not_claimed(path: Path) -> None:
    result = classify(path.read_bytes())
    assert (result.outcome, result.parser) == ("unknown", ""), [
        (record.recipient, record.kind, record.reason) for record in result.records
    ]


@needs_data
@pytest.mark.parametrize("name", sorted(BOUNCES))
def test_a_real_bounce_among_them_is_one(name: str) -> None:
    assert DATA is not None
    result = classify((DATA / name).read_bytes())
    assert result.outcome == "bounce"
    assert result.records and all(record.kind == "bounce" for record in result.records)
