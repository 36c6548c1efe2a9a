"""The milter's suppression list kept fresh from the store, from one thread.

:class:`Refresher` loads every active listing at start, then once a second asks the
store for the newest history id (:func:`~bouncefilter.store.suppressions.last_change`,
one look at an index); when it moved, it reads again only the (account, address) pairs
listed or lifted since (:func:`~bouncefilter.store.suppressions.changed_since`,
:func:`~bouncefilter.store.suppressions.find`). A change made by the pipe, the CLI or
the API thus reaches the milter's lookups within about a second, and no recipient ever
waits for the database.

A database that cannot be read (missing, locked past the busy timeout, not migrated)
never stops the mail: the error is logged, the last list read stays in use (an empty
one if none was ever read), and the next second tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bouncefilter import store
from bouncefilter.milter.suppressed import Listing, SuppressionList
from bouncefilter.store import suppressions

log = logging.getLogger(__name__)

#: How often the store is asked for changes, in seconds.
INTERVAL = 1.0
#: How often the whole list is read again, in seconds: listings that lapsed by their
#: ``until`` (soft ones, after their days) are found no more at once, and leave the
#: memory at the next whole read.
RELOAD_SECONDS = 3600.0
#: How often a failure that goes on is logged again, in seconds.
REPEAT_SECONDS = 60.0
_ERRORS = (store.DatabaseError, store.StoreError, OSError)


def listing_of(found: suppressions.Suppression | None, now: float) -> Listing | None:
    """What the milter holds of the store's row ``found`` at ``now``: ``None`` unless it suppresses."""
    if found is None or not found.active(now):
        return None
    return Listing(found.reason, found.detail, found.created_at, found.until)


class Refresher:
    """Keeps ``suppressed`` as the store at ``path`` has it, see the module docstring.

    :meth:`start` reads the list once before it returns (so the first message sees it),
    then every ``interval`` seconds from a daemon thread; :meth:`close` stops the thread.
    ``clock`` gives the time (epoch seconds) listings are read at.
    """

    def __init__(self, path: str, suppressed: SuppressionList, interval: float = INTERVAL,
                 busy_timeout_ms: int = store.BUSY_TIMEOUT_MS, clock: Callable[[], float] = time.time) -> None:
        self.suppressed = suppressed
        self._path = path
        self._interval = interval
        self._busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._conn: store.Connection | None = None
        self._seen: int | None = None  # the history id read up to; None: never loaded
        self._loaded_at = 0.0  # time.monotonic() of the last whole read
        self._failed_at: float | None = None  # when the failures going on were last logged
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="suppressions", daemon=True)

    def start(self) -> Refresher:
        """Read the list now, then keep it fresh from the thread."""
        self.refresh()
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and close the connection."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self._disconnect()

    def refresh(self) -> bool:
        """One look at the store: the whole list when none was read yet, the history went
        back (a restored database) or :data:`RELOAD_SECONDS` have passed, else what changed. ``True`` if the list
        is now as the store has it; never raises."""
        try:
            conn = self._conn = self._conn or store.connect(self._path, self._busy_timeout_ms)
            mark = suppressions.last_change(conn)
            if self._seen is None or mark < self._seen or time.monotonic() - self._loaded_at >= RELOAD_SECONDS:
                self._load(conn, mark)
            elif mark > self._seen:
                self._update(conn, mark)
        except _ERRORS as exc:
            self._failed(exc)
            return False
        if self._failed_at is not None:
            log.info("suppression list read again from %s: %d listings", self._path, len(self.suppressed))
            self._failed_at = None
        return True

    def _load(self, conn: store.Connection, mark: int) -> None:
        # The mark is read first: a change made meanwhile is read again next time, harmlessly.
        rows = list(suppressions.active_listings(conn, self._clock()))
        self.suppressed.replace(rows)
        self._seen = mark
        self._loaded_at = time.monotonic()
        log.info("suppression list loaded from %s: %d listings", self._path, len(rows))

    def _update(self, conn: store.Connection, mark: int) -> None:
        assert self._seen is not None
        pairs: dict[tuple[str, str], None] = {}
        newest = mark
        for history_id, account, key in suppressions.changed_since(conn, self._seen):
            pairs[(account, key)] = None
            newest = max(newest, int(history_id))
        now = self._clock()
        for account, key in pairs:
            self.suppressed.put(account, key, listing_of(suppressions.find(conn, account, key), now))
        self._seen = newest
        if pairs:
            log.debug("suppression list: %d addresses read again", len(pairs))

    def _failed(self, exc: BaseException) -> None:
        """Log a failure (again once a minute while it goes on) and start over with a new
        connection next time; the list held stays as it is."""
        now = time.monotonic()
        if self._failed_at is None or now - self._failed_at >= REPEAT_SECONDS:
            log.error("suppression list: cannot read %s (%s); mail flows with the %d listings held, "
                      "trying again every %g s", self._path, exc, len(self.suppressed), self._interval)
            self._failed_at = now
        self._disconnect()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except _ERRORS:
                pass

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.refresh()
            except Exception:  # never let the thread die: the list would go stale unseen
                log.exception("suppression list: refresh failed")
                self._disconnect()
