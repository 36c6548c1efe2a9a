"""A read-only view of one parsed message that the parsers share.

Parsers are tried in turn on the same message; the view computes what they ask for
(decoded headers, the notification text, the returned original) once and caches it.
"""

from __future__ import annotations

from bouncefilter.classify import mime, original
from bouncefilter.classify.lazy import cached
from bouncefilter.classify.mime import Part


class View:
    """One inbound message as the parsers see it."""

    def __init__(self, msg: Part) -> None:
        self.msg = msg

    def header(self, name: str) -> str:
        """A decoded top-level header (``""`` when absent)."""
        return mime.header(self.msg, name)

    @cached
    def subject(self) -> str:
        return self.header("Subject")

    @cached
    def sender(self) -> str:
        """The From: header, decoded, as written (display name included)."""
        return self.header("From")

    @cached
    def sender_lower(self) -> str:
        return self.sender.lower()

    @cached
    def subject_lower(self) -> str:
        return self.subject.lower()

    @cached
    def content_type(self) -> str:
        return self.msg.content_type

    @cached
    def text(self) -> str:
        """The human-readable notification: every text part outside attached messages."""
        return mime.all_text(self.msg)

    @cached
    def parts(self) -> tuple[Part, ...]:
        return tuple(mime.walk(self.msg))

    @cached
    def part_types(self) -> tuple[str, ...]:
        """The MIME type of each of :attr:`parts`, in the same order."""
        return tuple(part.content_type for part in self.parts)

    def parts_of(self, *ctypes: str) -> list[Part]:
        """Parts (at any depth) whose MIME type is one of ``ctypes``."""
        return [part for part, ctype in zip(self.parts, self.part_types) if ctype in ctypes]

    @cached
    def notification(self) -> str:
        """:attr:`text` up to where a returned copy of the original starts in it
        (:func:`bouncefilter.classify.original.notification_end`)."""
        return original.notification(self.text)

    @cached
    def returned(self) -> Part | None:
        """The returned original's headers, when the bounce attaches them as MIME."""
        return mime.returned_headers(self.parts)
