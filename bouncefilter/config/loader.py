"""Loading the configuration: one YAML file into validated, frozen settings.

Where it is: ``--config PATH``, else ``$BOUNCEFILTER_CONFIG``, else
``/etc/bouncefilter/bouncefilter.yaml`` (:func:`locate`). A misspelt key, a wrong type
or a value that cannot work is a :class:`~bouncefilter.config.build.ConfigError` naming
the dotted key (``accounts[1].domains: expected a list, got a string``).

``bouncefilter check-config`` also writes the parsed file beside it (:func:`write_cache`):
``bouncefilter pipe``, one process per bounce, then skips importing the YAML parser
(about 12 ms): that is why ``yaml`` is imported inside the functions that need it. The
copy names the SHA-256 of the text it was parsed from and is used only for that very
text; otherwise the YAML is parsed, so a stale or missing copy costs time, never truth.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from bouncefilter.config.build import ConfigError, build, plain
from bouncefilter.config.schema import MIN_KEY_LENGTH, Settings, VerpSettings

if TYPE_CHECKING:
    import yaml

DEFAULT_PATH = "/etc/bouncefilter/bouncefilter.yaml"
ENVIRONMENT_VARIABLE = "BOUNCEFILTER_CONFIG"
#: The parsed copy of a configuration file is kept at its path plus this suffix.
CACHE_SUFFIX = ".cache"


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
        return build(Settings, inherited(data), "", os.path.dirname(os.path.abspath(path)))
    except ConfigError as exc:
        raise exc.at(path) from None


def inherited(data: Any) -> Any:
    """``data`` with each account's ``suppression`` laid over the top-level one, key by
    key (``soft`` too), so that an account names only what it does differently. Data of
    the wrong shape is left as it is, for :func:`build` to name the key at fault."""
    default = data.get("suppression") if isinstance(data, dict) else None
    accounts = data.get("accounts") if isinstance(data, dict) else None
    if not isinstance(default, dict) or not isinstance(accounts, list):
        return data
    merged = []
    for account in accounts:
        own = account.get("suppression", {}) if isinstance(account, dict) else None
        if isinstance(own, dict):
            laid = {**default, **own}
            if isinstance(default.get("soft"), dict) and isinstance(own.get("soft"), dict):
                laid["soft"] = {**default["soft"], **own["soft"]}
            account = {**account, "suppression": laid}
        merged.append(account)
    return {**data, "accounts": merged}


def write_cache(path: str) -> str:
    """Write the parsed copy of the configuration file ``path`` beside it, with the
    file's mode (and, run as root, its owner), and return where.

    Raises :class:`ConfigError` if the file is invalid or holds values JSON cannot
    (a YAML date), ``OSError`` if the copy cannot be written.
    """
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
    """The VERP keys as the bytes :mod:`bouncefilter.core.verp` signs with (UTF-8 of each key).

    Every program that signs or verifies must use this one conversion. Raises
    :class:`ConfigError` as :func:`verp_keys` does.
    """
    return tuple(key.encode("utf-8") for key in verp_keys(settings))


def describe(settings: Settings) -> str:
    """The effective settings as YAML, defaults included and secrets hidden."""
    import yaml

    return yaml.safe_dump(plain(settings), sort_keys=False, default_flow_style=False, allow_unicode=True)


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
