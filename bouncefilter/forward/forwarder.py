"""``bouncefilter forward``: hands the outbox on to SMTP and web hook targets.

The pipe only writes ``pending`` outbox rows, in the transaction that stores the bounce.
A forwarder claims due rows in a write transaction (:func:`bouncefilter.store.claim_due`:
state ``sending``, its own claim string, a lease of ``forward.lease`` seconds), so several
forwarders never hold one row at once, then sends them one by one outside any
transaction (no lock is held while the network is waited on) and settles each row in
its own short commit:

- delivered: ``done``;
- a failure worth retrying (SMTP 4xx, HTTP 5xx or 429, no connection, no answer within
  ``forward.timeout``): ``pending`` again, due after an exponential backoff with jitter
  (about ``retry_base``, then twice as long each time, at most ``retry_max``; never
  sooner than an HTTP ``Retry-After``); once that would pass ``forward.max_age`` after
  the row was queued, ``dead``;
- a refusal (SMTP 5xx, HTTP 410 and other 4xx), a target no longer configured, a raw
  bounce no longer stored, no return path known: ``dead`` at once, with the error.

Rows are bounce events or changes to the suppression list (``suppression.created``,
``suppression.lifted``), worked alike: a web hook gets the change as a signed JSON event,
an SMTP target a short notification (:func:`bouncefilter.forward.message.notification`);
a ``return_path`` target the return path of the bounce that listed the address, and a
change no bounce with one caused (a listing by hand, a lifting of it) is ``done``
unsent, with a log line saying so.

Each target's rows of a batch are worked by a thread of their own, with connections of
their own, so a slow or dead receiver never delays another target's rows; every
attempt ends within ``forward.timeout`` (the whole exchange, not each read), and the
claims are renewed while any attempt runs, so no lease lapses under a slow one. When a
target cannot be reached, its other rows in the batch are put back untried, due when
the failed row is (or given up, once past ``max_age``): a receiver that is down costs
one timeout per batch, not one per row. SIGTERM ends the attempts in flight at once
(put back, untried). A forwarder killed at any moment leaves its claimed rows ``sending``; their
lease lapses and any forwarder takes them again, so nothing is lost and only the row in
flight can be sent twice (delivery is at-least-once; web hook receivers deduplicate on
the event id).
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from bouncefilter import store
from bouncefilter.config import RETURN_PATH, ForwardTarget, Settings, secret_key
from bouncefilter.forward import message, webhook
from bouncefilter.forward.transports import Result, SmtpSender, WebhookSender

log = logging.getLogger(__name__)

#: Jitter: each retry delay is the backoff times a factor drawn from this range.
JITTER = (0.75, 1.25)
#: The most targets a forwarder works at once (one thread each).
MAX_PARALLEL_TARGETS = 8


@dataclass
class Counts:
    """What a forwarder did: rows delivered, put back for a retry, given up."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0

    def add(self, other: Counts) -> None:
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead


@dataclass(frozen=True)
class _Target:
    """A configured target with what sending to it needs (its name is its key in the map)."""

    target: ForwardTarget
    keys: tuple[bytes, ...] = field(default=())


class Forwarder:
    """Works the outbox of ``conn`` for the targets in ``settings``. ``clock`` gives
    epoch seconds and ``rng`` the jitter (both replaceable in tests)."""

    def __init__(self, settings: Settings, conn: store.Connection, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self._settings = settings.forward
        self._conn = conn
        self._clock = clock
        self._rng = rng or random.Random()
        self._claim = secrets.token_hex(8)
        self._targets = {
            target.name(account.name): _Target(target, tuple(secret_key(s) for s in target.secrets))
            for account in settings.accounts for target in account.forward
        }
        self._smtp = settings.smtp
        #: The From of suppression notifications (their envelope sender is null).
        self._from = f"MAILER-DAEMON@{settings.verp.domain or 'localhost'}"
        # Per target, so that each target's thread has connections of its own.
        self._webhooks: dict[str, WebhookSender] = {}
        self._mail: dict[str, SmtpSender] = {}
        # One connection, several threads: the store is used under this lock, never
        # while a target is waited on.
        self._lock = threading.Lock()
        self._claimed_at = 0.0
        store.skip_fsync(conn)

    def run_once(self, stop: threading.Event | None = None) -> Counts:
        """Deliver what is due now, batch after batch, until nothing is (or ``stop`` is set)."""
        total = Counts()
        while not (stop and stop.is_set()):
            now = self._clock()
            items = store.claim_due(self._conn, self._claim, now, self._settings.lease, self._settings.batch)
            if not items:
                break
            self._claimed_at = now
            total.add(self._work(items, stop))
        return total

    def serve(self, stop: threading.Event) -> Counts:
        """Run until ``stop`` is set: deliver what is due, then sleep until the next row
        falls due or ``forward.poll_interval`` passes (new rows are found by then)."""
        total = Counts()
        try:
            while not stop.is_set():
                try:
                    total.add(self.run_once(stop))
                    due = store.next_due(self._conn)
                except store.Unavailable as exc:  # locked past the busy timeout, disk full
                    log.warning("database: %s; trying again", exc)  # claimed rows come back after the lease
                    store.abandon(self._conn)
                    due = None
                wait = self._settings.poll_interval if due is None else due - self._clock()
                stop.wait(min(self._settings.poll_interval, max(wait, 0.0)))
        finally:
            self.close()
        return total

    def close(self) -> None:
        """Close the kept connections to the targets."""
        for hooks in self._webhooks.values():
            hooks.close()
        for mail in self._mail.values():
            mail.close()

    def backoff(self, attempts: int) -> float:
        """Seconds until the next try after ``attempts`` failed ones, with jitter."""
        base = min(self._settings.retry_base * 2 ** min(attempts - 1, 40), self._settings.retry_max)
        return float(base * self._rng.uniform(*JITTER))

    def _work(self, items: list[store.OutboxItem], stop: threading.Event | None) -> Counts:
        """Work a claimed batch: each target's rows in a thread of their own, in order."""
        by_target: dict[str, list[store.OutboxItem]] = {}
        for item in items:
            by_target.setdefault(item.target, []).append(item)
        counts = Counts()
        with self._renewing(), ThreadPoolExecutor(min(len(by_target), MAX_PARALLEL_TARGETS)) as pool:
            for done in pool.map(lambda rows: self._work_target(rows, stop), by_target.values()):
                counts.add(done)
        return counts

    def _work_target(self, items: list[store.OutboxItem], stop: threading.Event | None) -> Counts:
        """One target's rows of a batch, in order; once the target fails to answer, the
        rest are put back untried."""
        counts = Counts()
        unreachable: tuple[float, str] | None = None  # (due again, why)
        for item in items:
            now = self._clock()
            if stop is not None and stop.is_set():
                with self._lock:
                    store.mark_retry(self._conn, item.id, self._claim, now, "not tried: forwarder stopped", False)
                continue
            if unreachable is not None:
                self._skip(item, *unreachable, now, counts)
                continue
            result = self._deliver(item, now, stop)
            due = self._settle(item, result, self._clock(), counts)
            if result.unreachable:
                unreachable = (due or now + self._settings.retry_base, result.error)
        return counts

    @contextmanager
    def _renewing(self) -> Iterator[None]:
        """Renew this forwarder's claims every half lease while the block runs, so that no
        lease lapses while an attempt is still running (attempts end within the timeout,
        at most half the lease)."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self._settings.lease / 4):
                now = self._clock()
                if now - self._claimed_at > self._settings.lease / 2:
                    with self._lock:
                        store.extend_claim(self._conn, self._claim, now + self._settings.lease)
                    self._claimed_at = now

        thread = threading.Thread(target=renew, name="lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def _skip(self, item: store.OutboxItem, due: float, error: str, now: float, counts: Counts) -> None:
        """Put back, untried, a row whose target failed on an earlier row of the batch
        (given up instead if it is past ``forward.max_age``)."""
        with self._lock:
            if now > item.queued_at + self._settings.max_age:
                why = f"gave up after {item.attempts - 1} attempts: {error}"
                store.mark_dead(self._conn, item.id, self._claim, why, count_attempt=False)
                counts.dead += 1
            else:
                store.mark_retry(self._conn, item.id, self._claim, due, f"not tried: {error}", False)
                counts.retried += 1

    def _deliver(self, item: store.OutboxItem, now: float, stop: threading.Event | None) -> Result:
        target = self._targets.get(item.target)
        if target is None:
            return Result(False, "target no longer in the configuration", permanent=True)
        if item.event is not None:
            return self._deliver_change(item, target, now, stop)
        if target.target.type == "webhook":
            with self._lock:
                record = store.export_record(self._conn, int(item.bounce["id"]))  # type: ignore[call-overload]
            if record is None:
                return Result(False, "the bounce is no longer stored", permanent=True)
            identifier = webhook.event_id(item.dedup_key, item.target)
            return self._post(item, target, identifier, webhook.event(record, identifier), now, stop)
        to = target.target.to or ""
        if to == RETURN_PATH:
            to = item.return_path()
            if not to:
                return Result(False, "no return path known for the bounced message", permanent=True)
        raw_id = item.bounce["raw_id"]
        with self._lock:
            raw = store.raw_message(self._conn, int(raw_id)) if raw_id is not None else None  # type: ignore[call-overload]
        if raw is None:
            return Result(False, "the raw bounce is no longer stored", permanent=True)
        mail = self._mail.setdefault(item.target, SmtpSender(self._smtp, self._settings.timeout))
        return mail.send(to, message.forwarded(raw, item.bounce), stop)

    def _deliver_change(self, item: store.OutboxItem, target: _Target, now: float,
                        stop: threading.Event | None) -> Result:
        """Send a suppression event (``item.event``): a signed JSON POST, or a short
        notification by mail; to a ``return_path`` target, the return path of the bounce
        that listed the address, and when there is none the row is done unsent."""
        if not item.event:
            return Result(False, "the suppression change is no longer stored", permanent=True)
        identifier = webhook.event_id(item.dedup_key, item.target)
        if target.target.type == "webhook":
            return self._post(item, target, identifier, webhook.suppression_event(item.event, identifier), now, stop)
        to = target.target.to or ""
        if to == RETURN_PATH:
            to = item.return_path()
            if not to:
                return Result(True, f"not sent: no return path known for {item.event['address']}"
                              " (no bounce of a message with one listed it)")
        mail = self._mail.setdefault(item.target, SmtpSender(self._smtp, self._settings.timeout))
        return mail.send(to, message.notification(item.event, to, self._from, identifier), stop)

    def _post(self, item: store.OutboxItem, target: _Target, identifier: str, event: dict[str, object], now: float,
              stop: threading.Event | None) -> Result:
        """POST ``event``, signed by every secret of ``target``, over this target's connections."""
        payload = webhook.body(event)
        headers = webhook.headers(target.keys, identifier, int(now), payload)
        sender = self._webhooks.setdefault(item.target, WebhookSender(self._settings.timeout))
        return sender.post(target.target.url or "", payload, headers, now, stop)

    def _settle(self, item: store.OutboxItem, result: Result, now: float, counts: Counts) -> float | None:
        """Record ``result`` for ``item``; when it is retried, when it is due again."""
        with self._lock:
            return self._settle_locked(item, result, now, counts)

    def _settle_locked(self, item: store.OutboxItem, result: Result, now: float, counts: Counts) -> float | None:
        where = f"outbox id={item.id} {item.label()} target={item.target} attempt={item.attempts}"
        if result.delivered:
            store.mark_done(self._conn, item.id, self._claim, now)
            counts.delivered += 1
            log.info("%s: %s", where, f"done, {result.error}" if result.error else "delivered")
            return None
        delay = max(self.backoff(item.attempts), result.retry_after or 0.0)
        if result.permanent or now + delay > item.queued_at + self._settings.max_age:
            why = result.error if result.permanent else f"gave up after {item.attempts} attempts: {result.error}"
            store.mark_dead(self._conn, item.id, self._claim, why)
            counts.dead += 1
            log.warning("%s: dead: %s", where, why)
            return None
        store.mark_retry(self._conn, item.id, self._claim, now + delay, result.error)
        counts.retried += 1
        log.info("%s: retry in %.0f s: %s", where, delay, result.error)
        return now + delay

