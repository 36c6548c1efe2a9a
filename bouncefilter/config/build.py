"""The generic builder: YAML data into the settings' named tuples, checked field by field.

A settings class is a named tuple whose fields carry their type (a ``Literal`` or an
``Enum`` lists the values a key takes; ``Annotated[TYPE,
METADATA]`` for the metadata :mod:`bouncefilter.config.schema` defines) and whose
optional ``problems()`` method yields what cannot work. :func:`build` checks every value
against its field's type and refuses an unknown key with the closest known one, so that
a mistake is a :class:`ConfigError` naming the dotted key at fault.
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

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



def is_settings(hint: Any) -> bool:
    """Whether ``hint`` is one of the settings classes (named tuples)."""
    return isinstance(hint, type) and issubclass(hint, tuple) and hasattr(hint, "_fields")


#: :func:`settings_fields` of each class asked about.
_FIELDS: dict[type, dict[str, tuple[Any, Mapping[str, Any]]]] = {}


def settings_fields(cls: type) -> dict[str, tuple[Any, Mapping[str, Any]]]:
    """The fields of the settings class ``cls``: name -> (type, metadata from ``Annotated``)."""
    if cls in _FIELDS:
        return _FIELDS[cls]
    found: dict[str, tuple[Any, Mapping[str, Any]]] = {}
    for name, hint in get_type_hints(cls, include_extras=True).items():
        if get_origin(hint) is Annotated:
            found[name] = (get_args(hint)[0], hint.__metadata__[0])
        else:
            found[name] = (hint, {})
    _FIELDS[cls] = found
    return found


def build(cls: type[_T], data: Any, key: str, base: str) -> _T:
    """An instance of the settings class ``cls`` from the mapping ``data`` found at ``key``."""
    if not isinstance(data, dict):
        raise ConfigError(key, f"expected a mapping of settings, got {_kind(data)}")
    fields = settings_fields(cls)
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
    if is_settings(hint):
        return build(hint, value, key, base)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(key, f"expected a list, got {_kind(value)}")
        item = get_args(hint)[0]
        return tuple(_convert(v, item, f"{key}[{i}]", meta, base) for i, v in enumerate(value))
    if origin is Literal or isinstance(hint, type) and issubclass(hint, Enum):
        choices = get_args(hint) if origin is Literal else tuple(member.value for member in hint)
        if isinstance(value, bool) and ("on" if value else "off") in choices:
            value = "on" if value else "off"  # YAML 1.1 reads a bare off (or on) as a boolean
        value = _string(value, key, meta, base)
        if value not in choices:
            raise ConfigError(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value if origin is Literal else hint(value)
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



def plain(value: Any, secret: bool = False) -> Any:
    """``value`` as plain YAML data; a secret string becomes ``<hidden>``."""
    if is_settings(type(value)):
        return {name: plain(getattr(value, name), meta.get("secret", False))
                for name, (_, meta) in settings_fields(type(value)).items()}
    if isinstance(value, tuple):
        return [plain(item, secret) for item in value]
    if isinstance(value, Enum):
        return value.value
    return "<hidden>" if secret and isinstance(value, str) else value

