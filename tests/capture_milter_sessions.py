"""Capture real MTA-milter sessions as fixtures for tests/test_milterwire.py (run as root).

Starts the Postfix lab (tests/support/postfix_lab.py) with ``bouncefilter milter`` on its
submission port, but with a recording proxy between them: Postfix connects to the
proxy's unix socket, the proxy connects to the milter's, and every chunk either side
writes is passed on and recorded. Each milter connection becomes one file in
tests/fixtures/milter-sessions/ (see :func:`write_session` for the format):

- ``postfix-tracked.session``: a tracked message with a submitted Return-Path, two recipients;
- ``postfix-bounce.session``: a null-sender message (left alone).

Usage: ``sudo .venv/bin/python tests/capture_milter_sessions.py`` (from the checkout).
The captures differ from run to run only in queue ids, dates, Message-IDs and tokens.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.bouncefilter_lab import MilterProcess, write_config  # noqa: E402
from support.postfix_lab import PostfixLab, make_message  # noqa: E402

OUT = Path(__file__).resolve().parent / "fixtures" / "milter-sessions"
#: Who wrote a chunk: the MTA (to the milter) or the milter (to the MTA).
FROM_MTA, FROM_MILTER = b">", b"<"
_RECORD = struct.Struct("!cI")


def write_session(path: Path, chunks: list[tuple[bytes, bytes]]) -> None:
    """One session as written: for each chunk, who wrote it (``>`` the MTA, ``<`` the
    milter), its length (4 octets, big-endian), its bytes, in the order they were read."""
    path.write_bytes(b"".join(_RECORD.pack(who, len(data)) + data for who, data in chunks))


class RecordingProxy:
    """A unix socket that forwards each connection to ``upstream`` and records both directions."""

    def __init__(self, path: Path, upstream: Path) -> None:
        self.path, self.upstream = path, upstream
        self.sessions: list[list[tuple[bytes, bytes]]] = []
        self._done = threading.Condition()
        path.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(str(path))
        path.chmod(0o666)  # Postfix's smtpd connects as postfix
        self._listener.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                mta, _ = self._listener.accept()
            except OSError:
                return
            milter = socket.socket(socket.AF_UNIX)
            milter.connect(str(self.upstream))
            chunks: list[tuple[bytes, bytes]] = []
            lock = threading.Lock()
            pumps = [threading.Thread(target=self._pump, args=(a, b, who, chunks, lock))
                     for a, b, who in ((mta, milter, FROM_MTA), (milter, mta, FROM_MILTER))]
            for pump in pumps:
                pump.start()
            threading.Thread(target=self._finish, args=(pumps, chunks), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, who: bytes, chunks: list[tuple[bytes, bytes]],
              lock: threading.Lock) -> None:
        while data := source.recv(65536):
            with lock:
                chunks.append((who, data))
                sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)

    def _finish(self, pumps: list[threading.Thread], chunks: list[tuple[bytes, bytes]]) -> None:
        for pump in pumps:
            pump.join()
        with self._done:
            self.sessions.append(chunks)
            self._done.notify_all()

    def wait(self, count: int, timeout: float = 30.0) -> list[list[tuple[bytes, bytes]]]:
        """The first ``count`` sessions, once they have ended."""
        with self._done:
            if not self._done.wait_for(lambda: len(self.sessions) >= count, timeout):
                raise TimeoutError(f"{len(self.sessions)} of {count} milter sessions ended")
            return self.sessions[:count]

    def close(self) -> None:
        self._listener.close()
        self.path.unlink(missing_ok=True)


def capture_postfix() -> None:
    """Both Postfix sessions, written to :data:`OUT`."""
    with PostfixLab() as lab:
        folder = lab.root / "capture"
        folder.mkdir()
        config = write_config(folder / "bouncefilter.yaml", {"shop.example.test": True})
        milter = MilterProcess(config, lab.run_dir / "milter.sock", folder / "milter.log").start()
        proxy = RecordingProxy(lab.run_dir / "capture.sock", lab.run_dir / "milter.sock")
        try:
            lab.reset(milter=f"unix:{proxy.path}", keep_return_path=True)
            shop = "orders@shop.example.test"
            lab.send(make_message(shop, "ann@dest.example.test", "Your order 1001",
                                  headers=[("Return-Path", "<returns@shop.example.test>")]),
                     shop, ["ann@dest.example.test", "bob@dest.example.test"])
            lab.wait_sink()
            lab.send(make_message("MAILER-DAEMON@shop.example.test", "ann@dest.example.test", "Undelivered"),
                     "", ["ann@dest.example.test"])
            tracked, bounce = proxy.wait(2)
        finally:
            proxy.close()
            milter.stop()
    write_session(OUT / "postfix-tracked.session", tracked)
    write_session(OUT / "postfix-bounce.session", bounce)


if __name__ == "__main__":
    capture_postfix()
    print(f"written to {OUT}")
