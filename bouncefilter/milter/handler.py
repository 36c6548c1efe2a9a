"""The milter's handler: one MTA connection, callback by callback.

For each message the MTA shows it, the handler collects what
:mod:`bouncefilter.milter.decision` needs (the sender, the SASL login, the recipients,
Message-ID, Subject, submitted ``Return-Path:`` headers), and at end of message applies
what it decides and hands a tracked message's record to the
:class:`~bouncefilter.milter.recorder.Recorder`.

A failure never takes the daemon down: an exception in a callback is logged and the
message goes on unchanged (``milter.on_error: accept``) or is tempfailed; a failed
database write is logged and the message still leaves with its VERP address (the MAC
proves it is ours). The milter asks the MTA only for the actions it uses (CHGFROM,
ADDHDRS, CHGHDRS, DELRCPT for discarded recipients, and SETSYMLIST to name the macros
it reads).

Suppressed recipients (the :class:`~bouncefilter.milter.suppressed.SuppressionList`
given, kept fresh by :mod:`bouncefilter.milter.refresh`) of an account whose
``suppression.enforce`` is ``reject`` are refused at RCPT TO with the list's reason;
with ``discard`` they are accepted, then removed at end of message (the whole message
discarded when no recipient is left), one log line each. Neither kind is recorded
among the message's recipients.

Only end of message takes a reply (:class:`QuietMilter`): one round trip per message,
as for a milter that asks for nothing else; RCPT TO too when some account refuses
suppressed recipients. The protocol is spoken by
:mod:`bouncefilter.milter.engine` (the default) or by pymilter's libmilter
(``milter.engine``), which answers every step on TCP (:class:`AnsweringMilter`).
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence

import Milter  # type: ignore[import-untyped]

from bouncefilter.core import verp
from bouncefilter.core.address import bare_address
from bouncefilter.milter import decision
from bouncefilter.milter.decision import Message, Policy, clean
from bouncefilter.milter.recorder import Recorder
from bouncefilter.milter.suppressed import Listing, SuppressionList, refusal
from bouncefilter.store.suppressions import address_of

log = logging.getLogger(__name__)

#: Everything the milter may ask the MTA to do: change the sender and headers, remove
#: discarded recipients, and name the macros it wants at the stages it reads them
#: (SETSYMLIST, :data:`MACROS`).
ACTIONS: int = Milter.CHGFROM | Milter.ADDHDRS | Milter.CHGHDRS | Milter.DELRCPT | Milter.SETSYMLIST
#: The MTA's macros the milter reads, by protocol stage: the SASL login and the queue id.
MACROS = {Milter.M_ENVFROM: ("{auth_authen}", "i"), Milter.M_EOM: ("i",)}
#: Callback replies (pymilter's constants, typed).
CONTINUE: int = Milter.CONTINUE
NOREPLY: int = Milter.NOREPLY
ACCEPT: int = Milter.ACCEPT
TEMPFAIL: int = Milter.TEMPFAIL
REJECT: int = Milter.REJECT
DISCARD: int = Milter.DISCARD
#: What :meth:`OutboundMilter._start` returns when the message is to go as ``milter.on_error`` says.
_FAILED = -1
#: The headers the milter reads (lower case).
READ_HEADERS = frozenset({"return-path", "message-id", "subject"})
TEMPFAIL_REPLY = ("451", "4.3.0", "bouncefilter cannot process this message now, try again later")


class InFlight:
    """Counts the messages between MAIL FROM and end of message, so a stop can wait for them.

    Once :meth:`close` is called no new message is let in.
    """

    def __init__(self) -> None:
        self._count = 0
        self._closed = False
        self._changed = threading.Condition()

    def begin(self) -> bool:
        """One more message in flight; ``False`` (and not counted) once closed."""
        with self._changed:
            if self._closed:
                return False
            self._count += 1
            return True

    def end(self) -> None:
        """One message done."""
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def close(self) -> None:
        """Let no new message in."""
        with self._changed:
            self._closed = True

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for none to be in flight; returns how many still are."""
        with self._changed:
            self._changed.wait_for(lambda: self._count <= 0, timeout)
            return self._count


class OutboundMilter(Milter.Base):  # type: ignore[misc]
    """One MTA connection; every callback it implements replies. ``suppressed``: the
    suppression list to enforce (``None``: none is, whatever the accounts say)."""

    def __init__(self, policy: Policy, recorder: Recorder, flight: InFlight,
                 suppressed: SuppressionList | None = None) -> None:
        self._policy = policy
        self._recorder = recorder
        self._flight = flight
        self._suppressed = suppressed
        self._message: Message | None = None
        # The message's account's suppression.enforce, and the recipients to remove at its end:
        # (as given at RCPT TO, the bare address, the listing).
        self._enforce = "off"
        self._discarded: list[tuple[str, str, Listing]] = []
        # Set at MAIL FROM when it failed but could not say so (no reply): end of message will.
        self._failed_at_mail = False
        # The replies to MAIL FROM, RCPT TO and headers until negotiation says the MTA wants none.
        self._mail_reply = CONTINUE
        self._rcpt_reply = CONTINUE
        self._header_reply = CONTINUE

    def negotiate(self, opts: list[int]) -> int:
        """Ask the MTA only for the actions the milter uses, and only for the macros it reads
        (when the MTA takes a macro list: an MTA that does not sends its usual ones);
        replies to RCPT TO only when a suppressed recipient may be refused there: an
        account that rejects has a listing now. (The MTA negotiates once per connection,
        and Postfix connects once per SMTP session: a session that began before its
        account's first listing lets that recipient through, as ``enforce: off`` would.)"""
        result = int(super().negotiate(opts))
        if self._suppressed is not None and self._suppressed.lists_any(decision.rejecting(self._policy)):
            opts[1] &= ~Milter.P_NR_RCPT
            self._protocol = opts[1]
        opts[0] &= ACTIONS
        self._actions = opts[0]
        if self._actions & Milter.SETSYMLIST:
            for stage, names in MACROS.items():
                # Not Milter.Base.setsymlist: it hands libmilter bytes where a str is needed.
                self._ctx.setsymlist(stage, " ".join(names))
        self._mail_reply = NOREPLY if self._protocol & Milter.P_NR_MAIL else CONTINUE
        self._rcpt_reply = NOREPLY if self._protocol & Milter.P_NR_RCPT else CONTINUE
        self._header_reply = NOREPLY if self._protocol & Milter.P_NR_HDR else CONTINUE
        return result

    # pymilter's entries for RCPT TO and headers, which libmilter calls with bytes: these
    # skip its generic decoding and dispatch, paid for every header of every message,
    # and decode only what the milter reads.

    def envrcpt_bytes(self, to: bytes, *params: bytes) -> int:
        """RCPT TO, undecoded: see :meth:`envrcpt`."""
        if self._message is not None and self.envrcpt(to.decode("utf-8", "surrogateescape")) == REJECT:
            return REJECT
        return self._rcpt_reply

    def header_bytes(self, name: str, value: bytes) -> int:
        """A header, its value undecoded: those :meth:`header` reads go on to it."""
        if self._message is not None and name.lower() in READ_HEADERS:
            self.header(name, value.decode("utf-8", "surrogateescape"))
        return self._header_reply

    def envfrom(self, sender: str, *params: str) -> int:
        """MAIL FROM: start a message of an account, or accept it untouched.

        When MAIL FROM takes no reply, a message left alone goes on to end of message,
        which lets it through unchanged (or applies ``milter.on_error`` if MAIL FROM failed).
        """
        self._end_message()
        try:
            outcome = self._start(sender, params)
        except Exception:
            log.exception("MAIL FROM %s: failed", clean(sender))
            outcome = _FAILED
        if self._mail_reply == NOREPLY:
            self._failed_at_mail = outcome == _FAILED
            return NOREPLY
        return self._failure() if outcome == _FAILED else outcome

    def envrcpt(self, to: str, *params: str) -> int:
        """RCPT TO: remember the recipient; a suppressed one is refused (``REJECT``, the
        reply set) or set aside for removal at end of message, as its account's
        ``suppression.enforce`` says."""
        message = self._message
        if message is None:
            return CONTINUE
        try:
            address = clean(bare_address(to))
            listing = self._listing(message, address)
            if listing is None:
                message.recipients.append(address)
            elif self._enforce == "reject" and self._rcpt_reply != NOREPLY:
                return self._refuse(message, address, listing)
            else:
                self._discarded.append((to, address, listing))
        except Exception:
            self._fail(message, "RCPT TO")
        return CONTINUE

    def header(self, name: str, value: str) -> int:
        """A header: keep Message-ID, Subject and Return-Path."""
        message = self._message
        if message is not None:
            try:
                message.read_header(name.lower(), value)
            except Exception:
                self._fail(message, f"header {name}")
        return CONTINUE

    def eom(self) -> int:
        """End of message: rewrite, tag and record it."""
        message, self._message = self._message, None
        if message is None:
            failed, self._failed_at_mail = self._failed_at_mail, False
            return self._failure() if failed else CONTINUE
        try:
            message.queue_id = self._macro("i") or message.queue_id
            if message.failed:
                return self._failure()
            return self._finish(message)
        except Exception:
            log.exception("%s: failed", message.queue_id or "NOQUEUE")
            return self._failure()
        finally:
            self._flight.end()

    def abort(self) -> int:
        """The MTA gave up on the message."""
        self._end_message()
        return CONTINUE

    def close(self) -> int:
        """The MTA closed the connection."""
        self._end_message()
        return CONTINUE

    # -- the work ---------------------------------------------------------------------

    def _start(self, sender: str, params: Sequence[str]) -> int:
        """Begin tracking a message of an account (``CONTINUE``), leave it alone
        (``ACCEPT``) or refuse it while stopping (``_FAILED``)."""
        address = clean(bare_address(sender))
        login = self._macro("{auth_authen}")
        account = decision.account_for(self._policy, address, login)
        if account is None:
            log.debug("MAIL FROM <%s> (login %r): left alone", address, login)
            return ACCEPT
        if not self._flight.begin():
            log.info("MAIL FROM <%s>: the milter is stopping, message not tracked (%s)", address,
                     self._policy.on_error)
            return _FAILED
        self._message = Message(account, address, params, self._macro("i"))
        self._enforce = decision.enforcement(self._policy, account) if self._suppressed is not None else "off"
        return CONTINUE

    def _listing(self, message: Message, address: str) -> Listing | None:
        """The listing that suppresses ``address`` for the message's account, if enforced."""
        if self._enforce == "off" or self._suppressed is None:
            return None
        return self._suppressed.find(message.account.name, address_of(address)[1], time.time())

    def _refuse(self, message: Message, address: str, listing: Listing) -> int:
        """Refuse a suppressed recipient at RCPT TO."""
        self.setreply(*refusal(address, listing))
        log.info("%s: account=%s to=<%s> refused: suppressed (%s, %s)", self._macro("i") or message.queue_id or
                 "NOQUEUE", message.account.name, address, listing.reason, listing.detail or "-")
        return REJECT

    def _discard(self, message: Message) -> int:
        """Remove the recipients set aside, one log line each; ``DISCARD`` when none is left."""
        discarded, self._discarded = self._discarded, []
        whole = not message.recipients
        for to, address, listing in discarded:
            if not whole:
                self.delrcpt(to)
            log.info("%s: account=%s to=<%s> discarded: suppressed (%s, %s)", message.queue_id or "NOQUEUE",
                     message.account.name, address, listing.reason, listing.detail or "-")
        if whole:
            log.info("%s: account=%s from=<%s> discarded: all %d recipients suppressed", message.queue_id or "NOQUEUE",
                     message.account.name, message.sender, len(discarded))
            return DISCARD
        return CONTINUE

    def _finish(self, message: Message) -> int:
        """Remove discarded recipients (or the whole message), apply what
        :func:`decision.changes` decides, and record a tracked message."""
        if self._discarded and self._discard(message) == DISCARD:
            return DISCARD
        change = decision.changes(self._policy, message, secrets.token_bytes(verp.KEY_BYTES), time.time())
        if change.sender is not None:
            self.chgfrom(change.sender, change.esmtp)
        if change.header is not None:
            self.addheader(*change.header)
        # Last first, so each index still names the header it named when it was read.
        for index in range(change.drop_return_paths, 0, -1):
            self.chgheader("Return-Path", index, None)
        if change.sent is not None:
            log.info("%s: account=%s from=<%s> verp=%s nrcpt=%d", message.queue_id, message.account.name,
                     message.sender, change.sender, len(message.recipients))
            self._recorder.record(change.sent)
        elif change.sender is not None:
            log.info("%s: account=%s from=<%s> to=%s (Return-Path), nrcpt=%d", message.queue_id,
                     message.account.name, message.sender, change.sender, len(message.recipients))
        return CONTINUE

    # -- helpers ----------------------------------------------------------------------

    def _macro(self, name: str) -> str:
        value = self.getsymval(name)
        return clean(value) if isinstance(value, str) else ""

    def _fail(self, message: Message, step: str) -> None:
        """Note a failure in a step that may not reply; end of message applies the policy."""
        log.exception("%s: %s failed", message.queue_id or "NOQUEUE", step)
        message.failed = True

    def _failure(self) -> int:
        """The reply to a message the milter failed on, as ``milter.on_error`` says."""
        if self._policy.on_error != "tempfail":
            return ACCEPT
        try:
            self.setreply(*TEMPFAIL_REPLY)
        except Exception:
            log.exception("cannot set the tempfail reply")
        return TEMPFAIL

    def _end_message(self) -> None:
        self._failed_at_mail = False
        self._discarded = []
        if self._message is not None:
            self._message = None
            self._flight.end()


def _without_reply(method: Callable[..., int]) -> Callable[..., int]:
    """``method``, marked for pymilter as a step that takes no reply. Unlike
    ``Milter.noreply`` this leaves the reply to ``method``, which answers ``NOREPLY`` itself."""

    @functools.wraps(method)
    def step(self: OutboundMilter, *args: str) -> int:
        return method(self, *args)

    step.milter_protocol = Milter.OPTIONAL_CALLBACKS[method.__name__][0]  # type: ignore[attr-defined]
    return step


class AnsweringMilter(OutboundMilter):
    """Every step answered, DATA included: for libmilter on TCP.

    Postfix sets no TCP_NODELAY, so a step that gets no reply leaves its packet
    unacknowledged, and Nagle holds the next one until the milter's delayed ACK, about
    40 ms later. libmilter cannot hurry that ACK; bouncefilter's own engine can
    (``TCP_QUICKACK``) and uses :class:`QuietMilter` on every socket.
    """

    def data(self) -> int:
        """DATA: nothing to do but answer."""
        return CONTINUE


class QuietMilter(OutboundMilter):
    """MAIL FROM, RCPT TO and headers take no reply: one round trip per message, at its end."""

    envfrom = _without_reply(OutboundMilter.envfrom)
    envrcpt = Milter.noreply(OutboundMilter.envrcpt)
    header = Milter.noreply(OutboundMilter.header)


# pymilter caches the steps a class negotiates on the class it is asked about, where a
# subclass asked later would find its base's cache: work each out now, subclasses first.
for _cls in (AnsweringMilter, QuietMilter, OutboundMilter):
    _cls.protocol_mask()


def milter_class(socket_spec: str, engine: str = "asyncio") -> type[OutboundMilter]:
    """The milter class for the socket and engine: :class:`AnsweringMilter` for libmilter
    on TCP, :class:`QuietMilter` otherwise."""
    return AnsweringMilter if engine == "libmilter" and socket_spec.startswith("inet") else QuietMilter
