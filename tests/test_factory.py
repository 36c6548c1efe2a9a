"""The bounce factory: real MTAs write real bounces, and bouncefilter must read them right.

Each MTA in :data:`factory.mtas.MTAS` (Postfix, Exim, Sendmail, OpenSMTPD, dma) runs on
loopback, resolves names through the factory's own name server and relays to peers that
answer each recipient as its situation (:data:`factory.situations.SITUATIONS`) says:
``550 5.1.1`` for ``userunknown@peer.example.test``, greylisting for
``greylisted@peer.example.test``, a host that never speaks for ``timeout@silent...``, and
so on. Every MTA then writes its own bounce in its own format, to the envelope sender,
whose exchanger is the peer again. What the reply stands for is known by construction,
so each bounce is a test: classified with :func:`bouncefilter.classify.pipeline.classify`, it must
give one record for the situation's recipient, of kind ``bounce``, with the situation's
reason and ``hard`` flag. Where an MTA sends delay notices (Postfix
``delay_warning_time``, Exim ``delay_warning``, Sendmail ``Timeout.queuewarn``,
OpenSMTPD ``bounce warn-interval``), every temporary situation first brings one, which
must classify as kind ``delay`` with the same reason, never hard.

The whole factory comes up once per session (the ``factory_results`` fixture) and gives
every message at once; MTAs give up after :data:`factory.mtas.LIFETIME` seconds, so the
run takes about a minute. It needs root; as root a missing MTA is an error, not a skip
(``make test`` installs them with ``tests/factory/install.sh``). The bounces are saved
in the factory's folder, and with ``BOUNCEFILTER_FACTORY_SAVE=1`` into
``tests/fixtures/factory/`` as golden fixtures (or run ``tests/factory/regenerate.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from factory import lab
from factory.mtas import MTA, MTAS
from factory.situations import SITUATIONS, Situation

from bouncefilter.classify.pipeline import classify
from bouncefilter.core.record import BounceRecord

pytestmark = [pytest.mark.factory, pytest.mark.slow]

Results = dict[tuple[str, str], lab.Result]

CASES = [pytest.param(mta, situation, id=f"{mta.name}-{situation.name}") for mta in MTAS for situation in mta.situations()]
DELAY_CASES = [
    pytest.param(mta, situation, id=f"{mta.name}-{situation.name}")
    for mta in MTAS
    for situation in mta.situations()
    if mta.expectation(situation).delay_reason is not None
]


@pytest.fixture(scope="session")
def factory_results() -> Iterator[Results]:
    """Every MTA's bounces for every situation, from one factory run for the session."""
    reason = lab.unavailable()
    if reason is not None:
        pytest.skip(reason)
    with lab.Factory() as factory:
        results = factory.run()
        factory.save(factory.folder / "bounces")
        if os.environ.get("BOUNCEFILTER_FACTORY_SAVE") == "1":
            lab.write_fixtures(results, lab.FIXTURES)
        yield results


def only_record(raw: bytes, context: str) -> BounceRecord:
    """The one record the classifier finds in ``raw``; fails, showing the message, otherwise."""
    result = classify(raw)
    assert result.outcome == "bounce", f"{context}: outcome {result.outcome!r}\n{raw.decode(errors='replace')[:3000]}"
    assert len(result.records) == 1, f"{context}: {len(result.records)} records: {result.records}"
    return result.records[0]


def received(results: Results, mta: type[MTA], situation: Situation) -> lab.Result:
    """The factory's result for one case, asserted complete (its error or log otherwise)."""
    result = results[(mta.name, situation.name)]
    assert not result.error, result.error
    assert len(result.messages) == result.expected, (
        f"{mta.name} sent {len(result.messages)} of {result.expected} expected messages for {situation.name} "
        f"({situation.recipient}) within {lab.DEADLINE} s\n--- its log:\n{result.log}"
    )
    return result


@pytest.mark.parametrize(("mta", "situation"), CASES)
def test_bounce_reason(factory_results: Results, mta: type[MTA], situation: Situation) -> None:
    """The MTA's bounce names the recipient and stands for the situation's reason.

    The expectation is the situation's (:mod:`factory.situations` explains how each is
    decided, the same for every MTA): its reason, and ``hard`` only for an address that
    is bad for good; an MTA whose notice cannot say more overrides it, saying why
    (:meth:`factory.mtas.MTA.expectation`).
    """
    expectation = mta.expectation(situation)
    bounce = received(factory_results, mta, situation).bounce
    assert bounce is not None
    record = only_record(bounce.message, f"{mta.name} bounce for {situation.name}")
    found = (record.recipient.lower(), record.kind, record.reason, record.hard)
    assert found == (situation.recipient, "bounce", expectation.reason, expectation.hard), (
        f"{mta.name} / {situation.name} ({situation.why}; {expectation.note}): status {record.status!r}, "
        f"diagnostic {record.diagnostic!r}, parser {record.parser!r}"
    )


@pytest.mark.parametrize(("mta", "situation"), DELAY_CASES)
def test_delay_notice(factory_results: Results, mta: type[MTA], situation: Situation) -> None:
    """Before giving up on a temporary situation the MTA sent a delay notice, which is a
    ``delay`` record for the recipient with the same reason (or, where the MTA does not
    always pass the remote's words on, one it names), never hard."""
    delay = received(factory_results, mta, situation).delay
    assert delay is not None
    record = only_record(delay.message, f"{mta.name} delay notice for {situation.name}")
    expectation = mta.expectation(situation)
    reason = record.reason if record.reason in expectation.delay_also else expectation.delay_reason
    found = (record.recipient.lower(), record.kind, record.reason, record.hard)
    assert found == (situation.recipient, "delay", reason, False), (
        f"{mta.name} / {situation.name} delay ({situation.why}): status {record.status!r}, "
        f"diagnostic {record.diagnostic!r}, parser {record.parser!r}"
    )


def test_every_mta_runs_every_situation() -> None:
    """The factory's breadth, as the issue asks: at least five MTAs, fifteen situations each,
    every reason name one of the taxonomy's."""
    from bouncefilter.core.reason import Reason

    assert len(MTAS) >= 5 and all(len(mta.situations()) >= 15 for mta in MTAS)
    assert {situation.reason for situation in SITUATIONS} <= set(Reason)
    assert len({situation.recipient for situation in SITUATIONS}) == len(SITUATIONS)
