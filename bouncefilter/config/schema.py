"""The configuration's schema: every key, its type and its default, and what cannot work.

Every key and its default is a field of one of the named tuples below, and nowhere else:
to add a key, add a field (and a rule in that class's ``problems`` if it needs one) and
describe it in ``contrib/bouncefilter.yaml``, which a test keeps complete. Relative paths
are relative to the folder of the configuration file. Pure: :mod:`bouncefilter.config.loader`
reads the file, :mod:`bouncefilter.config.build` checks the data against these classes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal, NamedTuple

from bouncefilter.core import verp
from bouncefilter.core.record import NEVER_FORWARDED, Outcome
from bouncefilter.core.suppression import Rules

#: Shortest VERP signing key accepted, in characters.
MIN_KEY_LENGTH = 16

#: Field metadata (``Annotated[TYPE, METADATA]``): ``path`` resolves a relative path against the configuration's folder,
#: ``lower``/``upper`` normalise strings, ``secret`` hides the value in :func:`describe`.
_PATH = {"path": True}
_LOWER = {"normalize": str.lower}
_UPPER = {"normalize": str.upper}
_SECRET = {"secret": True}

_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SOCKET = re.compile(r"(?:unix|local):/\S+|inet6?:(\d{1,5})(?:@\S+)?")
_GROUP = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")

#: A problem found by a ``problems`` method: (key relative to the object, message).
Problem = tuple[str, str]


class VerpSettings(NamedTuple):
    """Signed VERP envelope senders ``PREFIX+TOKEN@DOMAIN`` (see :mod:`bouncefilter.core.verp`)."""

    domain: Annotated[str | None, _LOWER] = None
    prefix: str = "b"
    keys: Annotated[tuple[str, ...], _SECRET] = ()
    keys_file: Annotated[str | None, _PATH] = None
    max_age_days: int = 60

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
        if self.domain is not None and not _DOMAIN.fullmatch(self.domain):
            yield "domain", f"not a domain name: {self.domain!r}"
        try:
            verp.check_prefix(self.prefix)
        except verp.VerpError as exc:
            yield "prefix", str(exc)
        for index, key in enumerate(self.keys):
            if len(key) < MIN_KEY_LENGTH:
                yield f"keys[{index}]", f"too short: a key needs at least {MIN_KEY_LENGTH} characters"
        if self.keys and self.keys_file:
            yield "keys_file", "give keys or keys_file, not both"
        if self.domain and not (self.keys or self.keys_file):
            yield "keys", "required when verp.domain is set (or give keys_file)"
        if self.max_age_days < 1:
            yield "max_age_days", "must be at least 1"


class MilterSettings(NamedTuple):
    """The outbound milter (``bouncefilter milter``)."""

    socket: str = "unix:/run/bouncefilter/milter.sock"
    #: The group a unix socket is given (mode 0660) so that Postfix's smtpd can connect;
    #: ``None`` leaves the socket as the umask made it.
    socket_group: str | None = "postfix"
    on_error: Annotated[Literal["accept", "tempfail"], _LOWER] = "accept"
    #: Give tracked mail the ESMTP envelope id ``ENVID=TOKEN`` when the client set none,
    #: so DSNs name the message a second time (``Original-Envelope-Id``).
    envid: bool = True
    #: How long SIGTERM waits for messages in flight before the milter exits, in seconds.
    stop_timeout: int = 30
    #: Who speaks the milter protocol: bouncefilter's own asyncio engine, or pymilter's
    #: libmilter (threads; costs Postfix more throughput, see the README).
    engine: Annotated[Literal["asyncio", "libmilter"], _LOWER] = "asyncio"
    #: The asyncio engine closes a connection that sends nothing for this long, in seconds
    #: (libmilter's own timeout, 7210 s, outlasts any SMTP session Postfix keeps open),
    #: and one that leaves a packet unfinished for a thirtieth of it (at most 30 s):
    #: Postfix writes every packet whole.
    idle_timeout: float = 7210
    #: The most MTA connections the asyncio engine serves at once; one more is closed
    #: unanswered and the MTA applies its default action (Postfix's
    #: ``milter_default_action``). Postfix opens one per smtpd process and milter
    #: (``default_process_limit``: 100). libmilter has no such limit (a thread each).
    max_connections: int = 1000

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
        if self.idle_timeout <= 0:
            yield "idle_timeout", "must be more than 0"
        if self.max_connections < 1:
            yield "max_connections", "must be at least 1"
        match = _SOCKET.fullmatch(self.socket)
        if not match or (match.group(1) and not 0 < int(match.group(1)) < 65536):
            yield "socket", f"expected unix:/PATH or inet:PORT@HOST, got {self.socket!r}"
        if self.socket_group is not None and not _GROUP.fullmatch(self.socket_group):
            yield "socket_group", f"not a group name: {self.socket_group!r}"
        if self.stop_timeout < 0:
            yield "stop_timeout", "must be 0 or more"


class PipeSettings(NamedTuple):
    """The pipe transport (``bouncefilter pipe``)."""

    max_bytes: int = 50 * 1024 * 1024
    #: What is kept of mail that no token of ours ties to a sent message (forged, or with
    #: no token at all): ``raw`` the rows and the message, ``record`` the rows only,
    #: ``drop`` nothing (logged), so that strangers cannot fill the disk.
    keep_unverified: Annotated[Literal["raw", "record", "drop"], _LOWER] = "record"
    #: The most rows one sent message can have (at least four per recipient: a delay, a
    #: bounce, a success, a complaint); what a message's bounces report beyond it is
    #: stored as one unclassified row per delivery, kept as ``keep_unverified`` says.
    max_records_per_message: int = 100

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
        if self.max_bytes < 1024:
            yield "max_bytes", "must be at least 1024"
        if self.max_records_per_message < 1:
            yield "max_records_per_message", "must be at least 1"


class RetentionSettings(NamedTuple):
    """How long the store keeps what it stores, in days."""

    days: int = 365
    raw_days: int = 30

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
        for name in ("days", "raw_days"):
            if getattr(self, name) < 1:
                yield name, "must be at least 1"


class LoggingSettings(NamedTuple):
    """Where the long-running commands and the pipe log to."""

    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], _UPPER] = "INFO"
    target: Annotated[Literal["syslog", "stderr"], _LOWER] = "syslog"
    facility: Annotated[Literal[
        "mail", "daemon", "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"
    ], _LOWER] = "mail"


#: ``to: return_path``: the bounce address recorded for the very message that bounced.
RETURN_PATH = "return_path"
_LOOPBACK_HOSTS = re.compile(r"localhost|127(\.\d{1,3}){3}|\[::1\]", re.I)
_URL = re.compile(r"(?P<scheme>https?)://(?P<host>\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(?P<port>\d{1,5}))?(?:[/?]\S*)?", re.I)
_WHSEC = "whsec_"
#: Fewest octets a plain web hook secret (not ``whsec_``) may have as its key.
MIN_SECRET_BYTES = 16
#: The octets a ``whsec_`` secret's key must have, as Standard Webhooks says.
WHSEC_BYTES = (24, 64)


class ForwardTarget(NamedTuple):
    """One place an account's processed bounces go: ``smtp`` (the raw bounce re-sent to
    ``to``, an address or ``return_path``) or ``webhook`` (a signed JSON POST to ``url``,
    signed with every one of ``secrets``), for the ``kinds`` it lists."""

    type: Annotated[Literal["smtp", "webhook"], _LOWER]
    to: str | None = None
    url: str | None = None
    secrets: Annotated[tuple[str, ...], _SECRET] = ()
    kinds: Annotated[tuple[Outcome, ...], _LOWER] = (Outcome.BOUNCE, Outcome.COMPLAINT, Outcome.AUTOREPLY,
                                                     Outcome.CHALLENGE, Outcome.REPLY, Outcome.UNKNOWN)
    #: Whether the target also gets the account's suppression events
    #: (``suppression.created``, ``suppression.lifted``).
    suppressions: bool = True

    def name(self, account: str) -> str:
        """The stable name outbox rows give this target: ``ACCOUNT:TYPE:DESTINATION``
        (secrets and kinds left out, so rotating a secret keeps queued rows)."""
        return f"{account}:{self.type}:{self.to if self.type == 'smtp' else self.url}"

    def problems(self) -> Iterator[Problem]:
        """What cannot work in this target."""
        if self.type == "smtp":
            yield from self._smtp_problems()
        else:
            yield from self._webhook_problems()
        if not self.kinds:
            yield "kinds", f"give at least one of {', '.join(o for o in Outcome if o not in NEVER_FORWARDED)}"
        for index, kind in enumerate(self.kinds):
            if kind in NEVER_FORWARDED:
                yield f"kinds[{index}]", f"{kind} rows are never forwarded: no verified token ties them to a recipient"

    def _smtp_problems(self) -> Iterator[Problem]:
        if self.to is None:
            yield "to", "required for type smtp (an address, or return_path)"
        elif self.to != RETURN_PATH and not _is_address(self.to):
            yield "to", f"not an address like user@example.com, nor return_path: {self.to!r}"
        for name in ("url", "secrets"):
            if getattr(self, name):
                yield name, "only for type webhook"

    def _webhook_problems(self) -> Iterator[Problem]:
        if self.to is not None:
            yield "to", "only for type smtp"
        if self.url is None:
            yield "url", "required for type webhook"
        else:
            yield from (("url", message) for message in _url_problems(self.url))
        if not self.secrets:
            yield "secrets", "give at least one signing secret"
        for index, secret in enumerate(self.secrets):
            try:
                key = secret_key(secret)
            except ValueError as exc:
                yield f"secrets[{index}]", str(exc)
                continue
            if secret.startswith(_WHSEC) and not WHSEC_BYTES[0] <= len(key) <= WHSEC_BYTES[1]:
                yield f"secrets[{index}]", (f"a whsec_ secret must decode to {WHSEC_BYTES[0]} to {WHSEC_BYTES[1]} "
                                            f"octets (Standard Webhooks); this one has {len(key)}")
            elif len(key) < MIN_SECRET_BYTES:
                yield f"secrets[{index}]", f"too short: a secret needs at least {MIN_SECRET_BYTES} octets"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a web hook secret: ``whsec_BASE64`` is decoded as Standard
    Webhooks say; any other string is used as its UTF-8 octets. ``ValueError`` for a
    ``whsec_`` secret that is not base64."""
    import binascii  # not base64, which costs every pipe process a millisecond

    if not secret.startswith(_WHSEC):
        return secret.encode("utf-8")
    try:
        return binascii.a2b_base64(secret[len(_WHSEC):], strict_mode=True)
    except (binascii.Error, ValueError):
        raise ValueError("a secret starting whsec_ must continue in base64") from None


def _url_problems(url: str) -> Iterator[str]:
    """Why ``url`` cannot be a web hook: https, or http to a loopback host only. (A
    pattern rather than urllib.parse, whose import would cost every pipe process 4 ms.)"""
    match = _URL.fullmatch(url)
    if not match:
        yield f"expected https://HOST[:PORT]/PATH, got {url!r}"
    elif match.group("port") and not 0 < int(match.group("port")) < 65536:
        yield f"not a port: {match.group('port')}"
    elif match.group("scheme").lower() == "http" and not _LOOPBACK_HOSTS.fullmatch(match.group("host")):
        yield "http is allowed only for a loopback host (localhost, 127.0.0.1, ::1): use https"


def _is_address(text: str) -> bool:
    local, at, domain = text.rpartition("@")
    return bool(local and at and _DOMAIN.fullmatch(domain.lower()))


def _duplicate_targets(targets: tuple[ForwardTarget, ...]) -> Iterator[Problem]:
    """Two targets of one account with the same type and destination."""
    seen: dict[str, int] = {}
    for index, target in enumerate(targets):
        first = seen.setdefault(target.name(""), index)
        if first != index:
            yield f"forward[{index}]", f"the same destination as forward[{first}]"


class SmtpSettings(NamedTuple):
    """The relay that ``smtp`` forwarding targets send through."""

    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: Annotated[str | None, _SECRET] = None

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
        if not 0 < self.port < 65536:
            yield "port", "expected 1 to 65535"
        if (self.username is None) != (self.password is None):
            yield "password" if self.username else "username", "give username and password together"


class ForwardSettings(NamedTuple):
    """How ``bouncefilter forward`` hands the outbox on (all durations in seconds)."""

    #: How long a row is retried after it was queued before it is given up (dead).
    max_age: float = 86400
    #: How long one SMTP or HTTP exchange may take before it counts as failed.
    timeout: float = 10
    #: The first retry comes after about this long, each next one after twice as long
    #: (with jitter), never more than retry_max apart.
    retry_base: float = 60
    retry_max: float = 3600
    #: A claimed row not finished within this long (its forwarder died) is due again.
    lease: float = 300
    #: How often the service looks for due rows when it has nothing to do.
    poll_interval: float = 1
    #: Rows claimed at once.
    batch: int = 100

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
        for name in ("max_age", "timeout", "retry_base", "retry_max", "lease", "poll_interval"):
            if getattr(self, name) <= 0:
                yield name, "must be more than 0"
        if self.batch < 1:
            yield "batch", "must be at least 1"
        if self.lease < 2 * self.timeout:
            yield "lease", "must be at least twice forward.timeout"


class ApiSettings(NamedTuple):
    """The download API and overview page (``bouncefilter api``, :mod:`bouncefilter.api.app`)."""

    #: Where ``bouncefilter api`` listens: HOST:PORT (under gunicorn, its --bind instead).
    listen: str = "127.0.0.1:8025"
    #: The longest window one request may ask for, in days.
    max_window_days: int = 92

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
        if listen_address(self.listen) is None:
            yield "listen", f"expected HOST:PORT such as 127.0.0.1:8025 or [::1]:8025, got {self.listen!r}"
        if self.max_window_days < 1:
            yield "max_window_days", "must be at least 1"


def listen_address(text: str) -> tuple[str, int] | None:
    """``(host, port)`` from ``HOST:PORT`` (``[IPV6]:PORT`` too), or ``None`` if it is not one."""
    match = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})", text.strip())
    if not match or not 0 < int(match.group(3)) < 65536:
        return None
    return match.group(1) or match.group(2), int(match.group(3))


class SoftSettings(NamedTuple):
    """How soft bounces (a full mailbox, a host that stays down) add up to a suppression."""

    #: Each soft bounce adds 1 to the address's score, which halves every this many days.
    half_life: float = 7
    #: The score at which the address is suppressed (with the defaults: three soft
    #: bounces within a week, each under 4.8 days after the one before; two never) ...
    threshold: float = 2
    #: ... for this many days; then it lapses by itself.
    duration: float = 14

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
        for name in ("half_life", "threshold", "duration"):
            if getattr(self, name) <= 0:
                yield name, "must be more than 0"


class SuppressionSettings(NamedTuple):
    """When an address is suppressed, and what the milter does with mail to it. The
    top-level ``suppression`` is every account's default; an account's own
    ``suppression`` overrides it key by key."""

    #: At RCPT TO, a suppressed recipient is refused with a 550 (``reject``), removed
    #: silently and recorded (``discard``), or let through (``off``: listed, not enforced).
    enforce: Annotated[Literal["reject", "discard", "off"], _LOWER] = "reject"
    #: Hard bounces (userunknown, hostunknown, hasmoved, notaccept) that suppress.
    hard_after: int = 1
    soft: SoftSettings = SoftSettings()

    def rules(self) -> Rules:
        """These settings as the core's :class:`~bouncefilter.core.suppression.Rules`."""
        return Rules(self.hard_after, self.soft.half_life, self.soft.threshold, self.soft.duration)

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
        if self.hard_after < 1:
            yield "hard_after", "must be at least 1"


class Account(NamedTuple):
    """One owner of outbound mail, and how the milter recognises its messages.

    A message belongs to the first account that lists its SASL login; failing that, the
    first that lists its envelope sender address; failing that, the first that lists
    the domain of that address (addresses and domains compared without regard to case).
    See :mod:`bouncefilter.core.accounts`.
    """

    name: str
    sasl_users: tuple[str, ...] = ()
    senders: Annotated[tuple[str, ...], _LOWER] = ()
    domains: Annotated[tuple[str, ...], _LOWER] = ()
    tracking: bool = True
    #: Where processed bounces go (see :class:`ForwardTarget`), in the outbox's order.
    forward: tuple[ForwardTarget, ...] = ()
    #: This account's suppression rules: the top-level ``suppression`` with this
    #: account's keys over it (:func:`bouncefilter.config.loader.load` merges them).
    suppression: SuppressionSettings = SuppressionSettings()

    def problems(self) -> Iterator[Problem]:
        """What cannot work in this account."""
        yield from _duplicate_targets(self.forward)
        if not _ACCOUNT_NAME.fullmatch(self.name):
            yield "name", "expected 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        if not (self.sasl_users or self.senders or self.domains):
            yield "", "give at least one of sasl_users, senders or domains"
        for index, sender in enumerate(self.senders):
            local, at, domain = sender.rpartition("@")
            if not (local and at and _DOMAIN.fullmatch(domain)):
                yield f"senders[{index}]", f"not an address like user@example.com: {sender!r}"
        for index, domain in enumerate(self.domains):
            if not _DOMAIN.fullmatch(domain):
                yield f"domains[{index}]", f"not a domain name: {domain!r}"


class Settings(NamedTuple):
    """Everything the configuration file says, with the defaults filled in."""

    database: Annotated[str, _PATH] = "/var/lib/bouncefilter/bouncefilter.db"
    #: Whether the milter (when it starts) and the pipe (when it stores) bring an older
    #: (or new, empty) database to the current schema; otherwise ``bouncefilter db
    #: migrate`` does it, and the pipe defers (75) until then.
    database_auto_migrate: bool = True
    #: How long a writer waits for another's lock before giving up (the pipe then
    #: defers with 75), in milliseconds.
    database_busy_timeout_ms: int = 10_000
    verp: VerpSettings = VerpSettings()
    milter: MilterSettings = MilterSettings()
    pipe: PipeSettings = PipeSettings()
    retention: RetentionSettings = RetentionSettings()
    logging: LoggingSettings = LoggingSettings()
    api: ApiSettings = ApiSettings()
    #: Every account's default suppression rules (each account may override keys).
    suppression: SuppressionSettings = SuppressionSettings()
    accounts: tuple[Account, ...] = ()
    smtp: SmtpSettings = SmtpSettings()
    forward: ForwardSettings = ForwardSettings()

    def problems(self) -> Iterator[Problem]:
        """What cannot work across sections."""
        if self.database_busy_timeout_ms < 0:
            yield "database_busy_timeout_ms", "must be 0 or more"
        seen: set[str] = set()
        for index, account in enumerate(self.accounts):
            if account.name.lower() in seen:
                yield f"accounts[{index}].name", f"duplicate account name {account.name!r}"
            seen.add(account.name.lower())
        if not self.verp.domain and any(account.tracking for account in self.accounts):
            yield "verp.domain", "required when an account has tracking on"

    def account(self, name: str) -> Account | None:
        """The account called ``name`` (case-insensitive), if any."""
        return next((a for a in self.accounts if a.name.lower() == name.lower()), None)

    def named_account(self, name: str) -> Account:
        """The account called ``name``; :class:`LookupError` naming the configured
        accounts if there is none (the one answer the CLI and the API give)."""
        found = self.account(name)
        if found is None:
            names = ", ".join(a.name for a in self.accounts) or "none"
            raise LookupError(f"no account {name!r} in the configuration (accounts: {names})")
        return found

    def suppression_targets(self, account: str) -> tuple[str, ...]:
        """The names of ``account``'s forwarding targets that want its suppression events."""
        found = self.account(account) if account else None
        return tuple(t.name(found.name) for t in found.forward if t.suppressions) if found else ()

    def forward_targets(self, account: str, kind: str) -> tuple[str, ...]:
        """The names of ``account``'s forwarding targets that want rows of ``kind``."""
        found = self.account(account) if account else None
        return tuple(t.name(found.name) for t in found.forward if kind in t.kinds) if found else ()
