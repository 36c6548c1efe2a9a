"""The configuration: one YAML file loaded into validated, frozen settings.

Where it is: ``--config PATH``, else ``$BOUNCEFILTER_CONFIG``, else
``/etc/bouncefilter/bouncefilter.yaml`` (:func:`locate`). Every key and its default is a
field of one of the named tuples below, and nowhere else: to add a key, add a field (and
a rule in that class's ``problems`` if it needs one) and describe it in
``contrib/bouncefilter.yaml``, which a test keeps complete. A misspelt key, a wrong type
or a value that cannot work is a :class:`ConfigError` naming the dotted key
(``accounts[1].domains: expected a list, got a string``). Relative paths are relative to
the folder of the configuration file.

``bouncefilter check-config`` also writes the parsed file beside it (:func:`write_cache`):
``bouncefilter pipe``, one process per bounce, then skips importing the YAML parser
(about 12 ms). The copy names the SHA-256 of the text it was parsed from and is used
only for that very text; otherwise the YAML is parsed, so a stale or missing copy costs
time, never truth.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Iterator, Mapping
from functools import cache
from typing import (TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypeVar, Union, get_args, get_origin,
                    get_type_hints)

from bouncefilter import verp

if TYPE_CHECKING:
    import yaml

DEFAULT_PATH = "/etc/bouncefilter/bouncefilter.yaml"
ENVIRONMENT_VARIABLE = "BOUNCEFILTER_CONFIG"
#: The parsed copy of a configuration file is kept at its path plus this suffix.
CACHE_SUFFIX = ".cache"
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
_T = TypeVar("_T")


class ConfigError(Exception):
    """The configuration is missing, unreadable or invalid.

    ``key`` is the dotted key at fault (empty for the file as a whole) and ``path`` the
    file; ``str()`` gives ``PATH: KEY: MESSAGE``.
    """

    def __init__(self, key: str, message: str, path: str = "") -> None:
        super().__init__(key, message, path)
        self.key = key
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return ": ".join(part for part in (self.path, self.key, self.message) if part)

    def at(self, path: str) -> ConfigError:
        """The same error, naming the file it was found in."""
        return ConfigError(self.key, self.message, path)


class VerpSettings(NamedTuple):
    """Signed VERP envelope senders ``PREFIX+TOKEN@DOMAIN`` (see :mod:`bouncefilter.verp`)."""

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

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
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

    def problems(self) -> Iterator[Problem]:
        """What cannot work in these settings."""
        if self.max_bytes < 1024:
            yield "max_bytes", "must be at least 1024"


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


#: The kinds of row a forwarding target can ask for: a row's outcome for a valid token
#: (``unknown`` there: the classifier failed on it); forged, expired and notoken rows
#: belong to no account and are never forwarded.
FORWARD_KINDS = ("bounce", "complaint", "autoreply", "challenge", "delay", "delivered", "reply", "unknown")
ForwardKind = Literal["bounce", "complaint", "autoreply", "challenge", "delay", "delivered", "reply", "unknown"]
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
    kinds: Annotated[tuple[ForwardKind, ...], _LOWER] = ("bounce", "complaint", "autoreply", "challenge", "reply", "unknown")

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
            yield "kinds", f"give at least one of {', '.join(FORWARD_KINDS)}"

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
    """The download API and overview page (``bouncefilter api``, :mod:`bouncefilter.api`)."""

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


class Account(NamedTuple):
    """One owner of outbound mail, and how the milter recognises its messages.

    A message belongs to the first account that lists its SASL login; failing that, the
    first that lists its envelope sender address; failing that, the first that lists
    the domain of that address (addresses and domains compared without regard to case).
    See :mod:`bouncefilter.accounts`.
    """

    name: str
    sasl_users: tuple[str, ...] = ()
    senders: Annotated[tuple[str, ...], _LOWER] = ()
    domains: Annotated[tuple[str, ...], _LOWER] = ()
    tracking: bool = True
    #: Where processed bounces go (see :class:`ForwardTarget`), in the outbox's order.
    forward: tuple[ForwardTarget, ...] = ()

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

    def forward_targets(self, account: str, kind: str) -> tuple[str, ...]:
        """The names of ``account``'s forwarding targets that want rows of ``kind``."""
        found = self.account(account) if account else None
        return tuple(t.name(found.name) for t in found.forward if kind in t.kinds) if found else ()


def locate(path: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
    """The configuration file to use: ``path``, else ``$BOUNCEFILTER_CONFIG``, else the default."""
    return path or environ.get(ENVIRONMENT_VARIABLE) or DEFAULT_PATH


def load(path: str) -> Settings:
    """Read and validate the file at ``path``; raises :class:`ConfigError` naming what is wrong.

    An empty file gives the defaults. The VERP keys file is not read here (see
    :func:`verp_keys`). The parsed copy (:func:`write_cache`) of this very text is used
    instead of parsing the YAML when there is one.
    """
    raw = _read(path)
    data = _cached(path, raw)
    return _settings(_parse(raw, path) if data is None else data, path)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError("", f"cannot read the configuration: {exc.strerror or exc}", path) from None


def _settings(data: Any, path: str) -> Settings:
    """The settings the YAML data of the file at ``path`` gives; raises :class:`ConfigError`."""
    try:
        return _build(Settings, data, "", os.path.dirname(os.path.abspath(path)))
    except ConfigError as exc:
        raise exc.at(path) from None


def write_cache(path: str) -> str:
    """Write the parsed copy of the configuration file ``path`` beside it, with the
    file's mode (and, run as root, its owner), and return where.

    Raises :class:`ConfigError` if the file is invalid or holds values JSON cannot
    (a YAML date), ``OSError`` if the copy cannot be written.
    """
    import json

    raw = _read(path)
    data = _parse(raw, path)
    _settings(data, path)  # only a valid file is worth keeping
    try:
        text = json.dumps({"sha256": _digest(raw), "data": data}, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError("", f"cannot keep a parsed copy: {exc}", path) from None
    mode = os.stat(path)
    target = path + CACHE_SUFFIX
    temporary = f"{target}.{os.getpid()}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode.st_mode & 0o777)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode.st_mode & 0o777)  # whatever the umask took away
        if os.geteuid() == 0:
            os.chown(temporary, mode.st_uid, mode.st_gid)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    return target


def _cached(path: str, raw: bytes) -> dict[str, Any] | None:
    """The data of the parsed copy of ``path`` if it was made from ``raw``, else ``None``."""
    import json

    try:
        with open(path + CACHE_SUFFIX, "rb") as handle:
            cache = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    if not isinstance(cache, dict) or cache.get("sha256") != _digest(raw):
        return None
    data = cache.get("data")
    return data if isinstance(data, dict) else None


def _digest(raw: bytes) -> str:
    import hashlib

    return hashlib.sha256(raw).hexdigest()


def _parse(raw: bytes, path: str) -> Any:
    """The YAML data of a configuration file (``{}`` for an empty one)."""
    import yaml

    try:
        data = yaml.load(raw, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError("", f"not valid YAML: {_yaml_problem(exc)}", path) from None
    return {} if data is None else data


def verp_keys(settings: VerpSettings) -> tuple[str, ...]:
    """The VERP keys, first the signing one: ``keys``, or the lines of ``keys_file``.

    Blank lines and lines starting with ``#`` in the file are skipped. Raises
    :class:`ConfigError` (key ``verp.keys_file``) when the file is unreadable, empty or
    holds a key that is too short.
    """
    if settings.keys or not settings.keys_file:
        return settings.keys
    path = settings.keys_file
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError("verp.keys_file", f"cannot read {path}: {reason}") from None
    keys = []
    for number, line in enumerate(lines, 1):
        key = line.strip()
        if not key or key.startswith("#"):
            continue
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError("verp.keys_file", f"{path} line {number}: key too short (at least {MIN_KEY_LENGTH} characters)")
        keys.append(key)
    if not keys:
        raise ConfigError("verp.keys_file", f"no keys in {path}")
    return tuple(keys)


def signing_keys(settings: VerpSettings) -> tuple[bytes, ...]:
    """The VERP keys as the bytes :mod:`bouncefilter.verp` signs with (UTF-8 of each key).

    Every program that signs or verifies must use this one conversion. Raises
    :class:`ConfigError` as :func:`verp_keys` does.
    """
    return tuple(key.encode("utf-8") for key in verp_keys(settings))


def describe(settings: Settings) -> str:
    """The effective settings as YAML, defaults included and secrets hidden."""
    import yaml

    return yaml.safe_dump(_plain(settings), sort_keys=False, default_flow_style=False, allow_unicode=True)


def _plain(value: Any, secret: bool = False) -> Any:
    """``value`` as plain YAML data; a secret string becomes ``<hidden>``."""
    if _is_settings(type(value)):
        return {name: _plain(getattr(value, name), meta.get("secret", False))
                for name, (_, meta) in _fields(type(value)).items()}
    if isinstance(value, tuple):
        return [_plain(item, secret) for item in value]
    return "<hidden>" if secret and isinstance(value, str) else value


# -- building the settings from YAML data -----------------------------------------------


def _is_settings(hint: Any) -> bool:
    """Whether ``hint`` is one of the settings classes (named tuples)."""
    return isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")


@cache
def _fields(cls: type) -> dict[str, tuple[Any, Mapping[str, Any]]]:
    """The fields of the settings class ``cls``: name -> (type, metadata from ``Annotated``)."""
    found: dict[str, tuple[Any, Mapping[str, Any]]] = {}
    for name, hint in get_type_hints(cls, include_extras=True).items():
        if get_origin(hint) is Annotated:
            found[name] = (get_args(hint)[0], hint.__metadata__[0])
        else:
            found[name] = (hint, {})
    return found


def _build(cls: type[_T], data: Any, key: str, base: str) -> _T:
    """An instance of the settings class ``cls`` from the mapping ``data`` found at ``key``."""
    if not isinstance(data, dict):
        raise ConfigError(key, f"expected a mapping of settings, got {_kind(data)}")
    fields = _fields(cls)
    for name in data:
        if name not in fields:
            raise ConfigError(_join(key, str(name)), "unknown key" + _suggestion(str(name), fields))
    values = {}
    defaults = cls._field_defaults  # type: ignore[attr-defined]
    for name, (hint, meta) in fields.items():
        if name in data:
            values[name] = _convert(data[name], hint, _join(key, name), meta, base)
        elif name not in defaults:
            raise ConfigError(_join(key, name), "required")
    built = cls(**values)
    for where, message in built.problems() if hasattr(built, "problems") else ():
        raise ConfigError(_join(key, where), message)
    return built


def _convert(value: Any, hint: Any, key: str, meta: Mapping[str, Any], base: str) -> Any:
    """``value`` checked against the type ``hint`` (and normalised by the field's ``meta``)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        (inner,) = [arg for arg in get_args(hint) if arg is not type(None)]
        return _convert(value, inner, key, meta, base)
    if _is_settings(hint):
        return _build(hint, value, key, base)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {_kind(value)}")
        item = get_args(hint)[0]
        return tuple(_convert(v, item, f"{key}[{i}]", meta, base) for i, v in enumerate(value))
    if origin is Literal:
        choices = get_args(hint)
        value = _string(value, key, meta, base)
        if value not in choices:
            raise ConfigError(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected a whole number, got {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {_kind(value)}")
        return float(value)
    if hint is str:
        return _string(value, key, meta, base)
    raise TypeError(f"no rule for settings of type {hint!r}")  # a mistake in this module


def _string(value: Any, key: str, meta: Mapping[str, Any], base: str) -> str:
    """``value`` as a non-empty string, normalised or resolved as a path if ``meta`` says so."""
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {_kind(value)}")
    text = value.strip()
    if not text:
        raise ConfigError(key, "must not be empty")
    if "normalize" in meta:
        text = str(meta["normalize"](text))
    if meta.get("path"):
        text = os.path.normpath(os.path.join(base, os.path.expanduser(text)))
    return text


def _join(key: str, name: str) -> str:
    """The dotted key of ``name`` (a field, ``[i]``, or empty) inside ``key``."""
    if not name:
        return key
    if not key or name.startswith("["):
        return key + name
    return f"{key}.{name}"


def _suggestion(name: str, known: Mapping[str, object]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else f" (expected one of {', '.join(known)})"


def _kind(value: Any) -> str:
    """How YAML would call the type of ``value``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


@cache
def _loader() -> type[yaml.SafeLoader]:
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (made on first
    use, so that importing this module does not import the YAML parser)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                name = self.construct_object(key_node, deep=deep)
                if not isinstance(name, str):
                    continue  # the base class reports keys that cannot be keys
                if name in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {name!r}",
                                                            key_node.start_mark)
                seen.add(name)
            return super().construct_mapping(node, deep)

    return Loader
