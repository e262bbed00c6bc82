"""Typed configuration: TOML files loaded into frozen dataclasses.

A config section is a frozen dataclass; its type hints say how each key is read:
`str`, `int`, `float`, `bool`, `Literal[...]`, `tuple[X, ...]` (a TOML list, held as a tuple;
`list[X]` reads the same), `Mapping[str, X]` (a table, held read-only; `dict[str, X]` reads the
same), `X | None`, a nested dataclass, a union of dataclasses told apart by their `type` key (how
sources and forwarders are registered), or `Annotated[T, Converter(...)]` for sizes, durations
and levels. Unknown keys are errors, and every error names the file, the key path and the
problem, e.g.
`agent.toml: sources[1].start_at: expected "beginning" or "end", got "start"`.

Sections compose: `Annotated[Section, Flatten()]` reads a shared section's keys from the
enclosing table (as serde's `flatten` does in Vector's configs), and a section with a required
key takes it from the enclosing field's default when its table leaves it out, so one section
type serves two daemons with different defaults (`MetricsConfig(listen="127.0.0.1:9434")`).

A section may define `validate(self)` that raises `FieldError` for checks across keys.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import math
import pathlib
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from fleetlog.common.errors import ConfigError
from fleetlog.common.levels import Level, parse_level
from fleetlog.common.units import format_duration, format_size, parse_duration, parse_size

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")   # a config section


@dataclass(frozen=True)
class Converter:
    """How to read a value from TOML (`parse`, raising ValueError) and print it back (`show`)."""

    parse: Callable[[Any], Any]
    show: Callable[[Any], Any]


Size = Annotated[int, Converter(parse_size, format_size)]
Duration = Annotated[float, Converter(parse_duration, format_duration)]
LevelName = Annotated[Level, Converter(parse_level, lambda level: level.label)]


@dataclass(frozen=True)
class Flatten:
    """Marks a nested section whose keys are written in the enclosing table, not under its name:
    `filters: Annotated[ForwarderFilters, Flatten()]` reads `min_level`, `include`, ... of a
    forwarder's own table, and --check-config prints them there."""


def _flattened(hint: Any) -> type | None:
    """The section type of a `Flatten` field, else None."""
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        if any(isinstance(e, Flatten) for e in extras):
            return base
    return None


def toml_key(f: dataclasses.Field[Any]) -> str:
    """The TOML key of a field: its name, or `metadata={"toml": ...}` for a key that is a Python
    keyword (an alert rule's `for`)."""
    return str(f.metadata.get("toml", f.name))


def _table_keys(cls: type) -> dict[str, type | None]:
    """The keys of cls's TOML table -> the flattened section that owns each (None: cls itself)."""
    hints = get_type_hints(cls, include_extras=True)
    keys: dict[str, type | None] = {}
    for f in dataclasses.fields(cls):
        section = _flattened(hints[f.name])
        if section is None:
            keys[toml_key(f)] = None
        else:
            keys.update(dict.fromkeys(_table_keys(section), section))
    return keys


class FieldError(ValueError):
    """Raised by a section's validate(): `key` is relative to that section."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key = key
        self.problem = problem


def check_regex(key: str, pattern: str) -> None:
    """FieldError naming `key` when pattern is not a valid regular expression."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise FieldError(key, f"invalid regular expression: {exc}") from None


def is_loopback(host: str) -> bool:
    """Whether a listen address's host part ("127.0.0.1", "[::1]", "localhost") is this machine only;
    "" (every address) is not."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Invalid(Exception):
    def __init__(self, where: str, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _describe(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool)) else type(value).__name__


def _convert(hint: Any, value: Any, where: str, default: Any = None) -> Any:
    origin = get_origin(hint)
    if origin is Annotated:
        base, *extras = get_args(hint)
        converter = next((e for e in extras if isinstance(e, Converter)), None)
        if converter is None:
            return _convert(base, value, where)
        try:
            return converter.parse(value)
        except ValueError as exc:
            raise _Invalid(where, str(exc)) from None
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            expected = " or ".join(json.dumps(c) for c in choices)
            raise _Invalid(where, f"expected {expected}, got {_describe(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(get_args(hint)):
            return None
        if all(dataclasses.is_dataclass(o) for o in options) and len(options) > 1:
            return _convert_tagged(options, value, where)
        if len(options) == 1:
            return _convert(options[0], value, where)
        errors = []
        for option in options:
            try:
                return _convert(option, value, where)
            except _Invalid as exc:
                errors.append(exc.problem)
        raise _Invalid(where, "; ".join(errors))
    if origin in (list, tuple):
        item = get_args(hint)[0]
        if not isinstance(value, list):
            raise _Invalid(where, f"expected a list, got {_describe(value)}")
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        _, item = get_args(hint)
        if not isinstance(value, dict):
            raise _Invalid(where, f"expected a table, got {_describe(value)}")
        return types.MappingProxyType({k: _convert(item, v, _join(where, k)) for k, v in value.items()})
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, where, default if isinstance(default, hint) else None)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Invalid(where, f"expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(where, f"expected a whole number, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Invalid(where, f"expected a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise _Invalid(where, f"expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"config type {hint!r} is not supported")  # a programming error, not user input


def _convert_tagged(options: list[type], value: Any, where: str) -> Any:
    """Pick the dataclass whose `type: Literal[...]` field admits value["type"]."""
    by_tag: dict[str, type] = {}
    for option in options:
        for tag in get_args(get_type_hints(option, include_extras=True)["type"]):
            by_tag[tag] = option
    if not isinstance(value, dict):
        raise _Invalid(where, f"expected a table, got {_describe(value)}")
    tag = value.get("type")
    if not isinstance(tag, str) or tag not in by_tag:   # a table or list is no tag (found by fuzzing)
        expected = " or ".join(json.dumps(t) for t in by_tag)
        raise _Invalid(_join(where, "type"), f"expected {expected}, got {_describe(tag)}")
    return _build(by_tag[tag], value, where)


def _build(cls: type[T], data: Any, where: str, fallback: Any = None) -> T:
    """cls from a TOML table; a required key the table omits comes from `fallback` (the
    enclosing field's default section), if there is one."""
    if not isinstance(data, dict):
        raise _Invalid(where or "(top level)", f"expected a table, got {_describe(data)}")
    hints = get_type_hints(cls, include_extras=True)
    known = _table_keys(cls)
    for key in data:
        if key not in known:
            raise _Invalid(_join(where, key), f"unknown key (known keys: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        name, key = field.name, toml_key(field)
        section = _flattened(hints[name])
        if section is not None:
            own = {k: v for k, v in data.items() if known[k] is section}
            values[name] = _build(section, own, where, field.default if isinstance(field.default, section) else None)
        elif key in data:
            values[name] = _convert(hints[name], data[key], _join(where, key), field.default)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            if fallback is None:
                raise _Invalid(_join(where, key), "required key is missing")
            values[name] = getattr(fallback, name)
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except FieldError as exc:
            raise _Invalid(_join(where, exc.key), exc.problem) from None
    return obj


def build_config(cls: type[T], data: dict[str, Any], file_label: str) -> T:
    """Build a config object from parsed TOML; ConfigError names file_label and the key."""
    try:
        return _build(cls, data, "")
    except _Invalid as exc:
        raise ConfigError(f"{file_label}: {exc.where}: {exc.problem}") from None


def build_value(hint: Any, data: Any, where: str) -> Any:
    """One value read as collector.toml reads it at key path `where` (the settings layer builds
    a forwarder's table from an API body this way); ConfigError `WHERE.KEY: problem`, the same
    words --check-config prints."""
    try:
        return _convert(hint, data, where)
    except _Invalid as exc:
        raise ConfigError(f"{exc.where}: {exc.problem}") from None


def read_toml(path: str | pathlib.Path) -> dict[str, Any]:
    path = pathlib.Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def load_config(cls: type[T], path: str | pathlib.Path) -> T:
    """Read and validate a TOML config file into `cls`."""
    return build_config(cls, read_toml(path), pathlib.Path(path).name)


def to_plain(obj: Any) -> Any:
    """The effective config as plain JSON-able values (durations and sizes spelled as in TOML)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        hints = get_type_hints(type(obj), include_extras=True)
        plain: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if _flattened(hints[f.name]) is not None:
                plain.update(to_plain(value))
            else:
                plain[toml_key(f)] = _show(hints[f.name], value)
        return plain
    return obj


def _show(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = get_origin(hint)
    if origin is Annotated:
        base, *extras = get_args(hint)
        converter = next((e for e in extras if isinstance(e, Converter)), None)
        return converter.show(value) if converter else _show(base, value)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        return _show(options[0], value) if len(options) == 1 else to_plain(value)
    if origin in (list, tuple):
        item = get_args(hint)[0]
        return [_show(item, v) for v in value]
    if origin in (dict, Mapping):
        _, item = get_args(hint)
        return {k: _show(item, v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        return to_plain(value)
    if isinstance(value, float) and math.isinf(value):
        return "indefinite"
    return value
