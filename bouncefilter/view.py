"""A read-only view of one parsed message that the parsers share.

Parsers are tried in turn on the same message; the view computes what they ask for
(decoded headers, the notification text, the returned original) once and caches it.
"""

from __future__ import annotations

from email.message import Message
from functools import cached_property

from bouncefilter import mime


class View:
    """One inbound message as the parsers see it."""

    def __init__(self, msg: Message) -> None:
        self.msg = msg

    def header(self, name: str) -> str:
        """A decoded top-level header (``""`` when absent)."""
        return mime.header(self.msg, name)

    @cached_property
    def subject(self) -> str:
        return self.header("Subject")

    @cached_property
    def sender(self) -> str:
        """The From: header, decoded, as written (display name included)."""
        return self.header("From")

    @cached_property
    def sender_lower(self) -> str:
        return self.sender.lower()

    @cached_property
    def subject_lower(self) -> str:
        return self.subject.lower()

    @cached_property
    def content_type(self) -> str:
        return mime.content_type(self.msg)

    @cached_property
    def text(self) -> str:
        """The human-readable notification: every text part outside attached messages."""
        return mime.all_text(self.msg)

    @cached_property
    def parts(self) -> tuple[Message, ...]:
        return tuple(mime.walk(self.msg))

    @cached_property
    def part_types(self) -> tuple[str, ...]:
        """The MIME type of each of :attr:`parts`, in the same order."""
        return tuple(mime.content_type(part) for part in self.parts)

    def parts_of(self, *ctypes: str) -> list[Message]:
        """Parts (at any depth) whose MIME type is one of ``ctypes``."""
        return [part for part, ctype in zip(self.parts, self.part_types) if ctype in ctypes]

    @cached_property
    def returned(self) -> Message | None:
        """The returned original's headers, when the bounce attaches them as MIME."""
        return mime.returned_headers(self.msg)
