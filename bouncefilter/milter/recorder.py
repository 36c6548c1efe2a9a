"""The milter's recorder: sent messages written to the store from one writer thread."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Sequence

from bouncefilter import store
from bouncefilter.core.record import SentMessage

log = logging.getLogger(__name__)

#: Most sent messages queued for the database, and most written in one transaction.
MAX_QUEUE = 100_000
MAX_BATCH = 500
#: The database writer's shortest time between two commits, in seconds.
BATCH_SECONDS = 0.1
#: How long the writer waits after a failed write before it tries again, in seconds.
RETRY_SECONDS = 1.0


class Recorder:
    """Writes sent messages to the store from one writer thread, many rows per transaction.

    :meth:`record` only appends to a deque (no lock, no wake-up), so end of message never
    waits for the database: SQLite takes one writer at a time, and writers that find the
    database locked back off in sleeps of milliseconds. The writer wakes every ``window``
    seconds and writes all that has arrived meanwhile in one transaction, so a row lands
    up to ``window`` after its message was accepted (a bounce may come back sooner;
    readers must not rely on the row being there). A write that fails (the database
    locked past the busy timeout, the disk full) is kept and tried again every
    ``retry`` seconds, first in the next transaction, while new messages queue behind it
    up to ``max_queue``; only what finds the queue full, or is still unwritten when the
    recorder closes, is lost, and logged with the queue id and token of every message.
    Nothing is ever raised: the mail has gone out anyway.

    Commits do not wait for the disk (:func:`store.connect` with ``durable=False``): each
    would cost an fsync, a large part of the milter's CPU time, for rows that are only
    queued in memory until then anyway. A power cut may lose the last records, as it loses
    what is queued; the MAC in the token still proves such a message's bounces ours.
    """

    def __init__(self, path: str, max_queue: int = MAX_QUEUE, window: float = BATCH_SECONDS,
                 busy_timeout_ms: int = store.BUSY_TIMEOUT_MS, retry: float = RETRY_SECONDS) -> None:
        self._path = path
        self._window = window
        self._retry = retry
        self._busy_timeout_ms = busy_timeout_ms
        self._max_queue = max_queue
        # Sent messages, and the events of flush() and close() (None) in their place.
        self._queue: collections.deque[SentMessage | threading.Event | None] = collections.deque()
        self._wake = threading.Event()
        self._writer = threading.Thread(target=self._write_queue, name="recorder", daemon=True)
        self._writer.start()

    def record(self, message: SentMessage) -> None:
        """Queue ``message`` for writing (logged and dropped if the queue is full)."""
        if len(self._queue) >= self._max_queue:
            _lost([message], self._path, "the write queue is full")
            return
        self._queue.append(message)

    def flush(self) -> None:
        """Wait until everything queued so far is written (or has failed)."""
        done = threading.Event()
        self._queue.append(done)
        self._wake.set()
        done.wait()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer (waiting up to ``timeout`` seconds)."""
        self._queue.append(None)
        self._wake.set()
        self._writer.join(timeout)

    def _write_queue(self) -> None:
        conn: store.Connection | None = None
        unwritten: list[SentMessage] = []  # a batch that failed, first in the next one
        stop = False
        while not stop:
            self._wake.wait(self._retry if unwritten else self._window)
            self._wake.clear()
            while (self._queue or unwritten) and not stop:
                messages, waiting, stop = self._take_batch(MAX_BATCH - len(unwritten))
                conn, unwritten = self._write(conn, unwritten + messages)
                for done in waiting:
                    done.set()
                if unwritten and not stop:
                    break  # wait before trying again
        if unwritten:
            conn, unwritten = self._write(conn, unwritten)
            _lost(unwritten, self._path, "still unwritten when the milter stopped")
        if conn is not None:
            conn.close()

    def _take_batch(self, room: int) -> tuple[list[SentMessage], list[threading.Event], bool]:
        """Up to ``room`` queued messages, the flush() events among them, and whether
        close() was reached."""
        messages: list[SentMessage] = []
        waiting: list[threading.Event] = []
        while self._queue and len(messages) < room:
            item = self._queue.popleft()
            if item is None:
                return messages, waiting, True
            if isinstance(item, threading.Event):
                waiting.append(item)
            else:
                messages.append(item)
        return messages, waiting, False

    def _write(self, conn: store.Connection | None,
               messages: list[SentMessage]) -> tuple[store.Connection | None, list[SentMessage]]:
        """Write ``messages`` in one transaction: the connection to use next (``None``
        after a failure) and what is still unwritten (all of it after a failure, logged)."""
        if not messages:
            return conn, messages
        try:
            conn = conn or store.connect(self._path, self._busy_timeout_ms, durable=False)
            with store.Writing(conn):
                store.record_messages(conn, messages)
        except (store.DatabaseError, store.StoreError, OSError) as exc:
            log.warning("database %s: %d sent messages not recorded yet, trying again in %g s: %s", self._path,
                        len(messages), self._retry, exc)
            if conn is not None:
                conn.close()
            return None, messages
        return conn, []


def _lost(messages: Sequence[SentMessage], path: str, reason: str) -> None:
    for message in messages:
        log.error("%s: not recorded (token %s): database %s: %s", message.queue_id or "NOQUEUE", message.token,
                  path, reason)
