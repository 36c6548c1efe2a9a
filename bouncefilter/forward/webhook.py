"""Web hook events and their signatures, as "Standard Webhooks" define them. Pure.

One event per stored row: ``event_id`` (the same on every retry: receivers deduplicate
on it) and ``event`` (what the target subscribed to: ``bounce``, ``complaint``,
``autoreply``, ``delay``, ``delivered``, ``reply`` or ``unknown``), then the download
API's record for the row (:data:`bouncefilter.store.EXPORT_FIELDS` defines both).
A change to the suppression list is an event too (:func:`suppression_event`):
``suppression.created`` or ``suppression.lifted``, then the change's fields.

Signing: ``webhook-id`` (the event id), ``webhook-timestamp`` (epoch seconds of the
attempt) and ``webhook-signature``: ``v1,`` and the base64 of HMAC-SHA256 over
``ID.TIMESTAMP.BODY``, one such entry per secret, separated by spaces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence


def event_id(dedup_key: str, target: str) -> str:
    """The event's id for one row and one target: stable across retries (and across a
    row stored again from the same message), distinct per target."""
    return "evt_" + hashlib.sha256(f"{dedup_key}\0{target}".encode()).hexdigest()[:32]


def event(record: Mapping[str, object], identifier: str) -> dict[str, object]:
    """The JSON event for an exported record (as :func:`bouncefilter.store.export_record`
    gives it) and the event id."""
    return {"event_id": identifier, "event": record["outcome"], **record}


def suppression_event(change: Mapping[str, object], identifier: str) -> dict[str, object]:
    """The JSON event for a change to the suppression list (as
    :func:`bouncefilter.store.suppressions.history_event` gives it: ``event``, ``id``,
    ``account``, ``address``, ``at``, ``reason``, ``detail``, ``until``, ``bounce_id``,
    ``actor``) and the event id."""
    return {"event_id": identifier, "event": change["event"], **{k: v for k, v in change.items() if k != "event"}}


def body(fields: Mapping[str, object]) -> bytes:
    """The request body: compact UTF-8 JSON."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(key: bytes, identifier: str, timestamp: int, payload: bytes) -> str:
    """One ``v1,BASE64`` signature of ``payload`` with ``key``."""
    mac = hmac.new(key, f"{identifier}.{timestamp}.".encode() + payload, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def headers(keys: Sequence[bytes], identifier: str, timestamp: int, payload: bytes) -> dict[str, str]:
    """The signing headers for one attempt: every key signs."""
    return {
        "webhook-id": identifier,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(key, identifier, timestamp, payload) for key in keys),
    }
