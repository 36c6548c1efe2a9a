"""One module per MTA or service that writes bounces without a delivery-status part.

Each module has ``parse(view) -> list[Finding] | None``: ``None`` when the message is not
in its format. :data:`PARSERS` is the order they are tried in: formats with the most
specific signatures first, so that a loose one never claims another's message.
"""

from __future__ import annotations

from collections.abc import Callable

from bouncefilter.record import Finding
from bouncefilter.view import View

PARSERS: tuple[tuple[str, Callable[[View], "list[Finding] | None"]], ...] = ()
