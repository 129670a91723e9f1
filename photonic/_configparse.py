"""YAML reading and typed field readers for photonic.config that collect every problem found."""

from __future__ import annotations

import ipaddress
import math
import os.path
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

from photonic.errors import ConfigError, ConfigProblem

T = TypeVar("T")

FILE_KEY = "(file)"
MISSING = "nothing (the key is missing)"
_HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


class Invalid(ValueError):
    """Raised by a converter; a given `expected` replaces the field's general expectation."""

    def __init__(self, expected: str | None = None) -> None:
        super().__init__(expected or "invalid value")
        self.expected = expected


@dataclass(frozen=True)
class Field(Generic[T]):
    """What a key holds: the text shown when it is wrong, and the conversion from YAML."""

    expected: str
    convert: Callable[[object], T]


def describe(value: object) -> str:
    """The `got` part of a problem: short, and explicit about YAML's types."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"{shown!r} (a string)"
    if isinstance(value, int | float):
        return f"{value} (a number)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class Problems:
    """Every problem found in one config file, in the order found."""

    def __init__(self, file: Path) -> None:
        self.file = str(file)
        self.items: list[ConfigProblem] = []

    def add(self, key: str, expected: str, got: str = "") -> None:
        self.items.append(ConfigProblem(self.file, key, expected, got))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that remembers duplicate keys, which PyYAML would silently overwrite."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    self.duplicates.append((key_node.start_mark.line + 1, key_node.value))
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def load_document(path: Path, problems: Problems) -> object:
    """The parsed YAML in `path`; a file that cannot be read or parsed raises ConfigError here."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.add(FILE_KEY, "an existing config file", "no such file")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(FILE_KEY, "a readable UTF-8 config file", str(exc))
    problems.raise_if_any()
    loader = _StrictLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        problems.add(*_syntax_problem(exc))
    except yaml.YAMLError as exc:
        problems.add(FILE_KEY, "valid YAML", str(exc))
    finally:
        loader.dispose()
    problems.raise_if_any()
    for line, key in loader.duplicates:
        problems.add(f"line {line}", "each key once per mapping", f"a second {key!r}")
    return data


def _syntax_problem(exc: yaml.MarkedYAMLError) -> tuple[str, str, str]:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else FILE_KEY
    got = exc.problem or str(exc)
    if exc.context and exc.context_mark:
        got += f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
    return where, "valid YAML", got


class Section:
    """One YAML mapping being read: typed getters, then `finish()` reports the unknown keys."""

    def __init__(self, problems: Problems, data: object, prefix: str) -> None:
        self.problems = problems
        self.prefix = prefix
        self.known: set[str] = set()
        self._data: dict[str, object] = {}
        # A section of the wrong type was reported once; its keys are not also each "missing".
        self._broken = data is not None and not isinstance(data, dict)
        if not isinstance(data, dict):
            if self._broken:
                problems.add(prefix or FILE_KEY, "a mapping of keys to values", describe(data))
            return
        for key, value in data.items():
            if isinstance(key, str):
                self._data[key] = value
            else:
                problems.add(self.key(str(key)), "a text key (quote it)", describe(key))

    def key(self, name: str) -> str:
        """The dotted path of `name` in this section, as problems show it."""
        return f"{self.prefix}.{name}" if self.prefix else name

    def has(self, name: str) -> bool:
        return name in self._data

    def names(self) -> list[str]:
        """Every key present, all counted as known: for mappings keyed by user data (agent ids)."""
        self.known.update(self._data)
        return list(self._data)

    def raw(self, name: str) -> object:
        """The untyped value of `name` (None when absent), for callers that check it themselves."""
        self.known.add(name)
        return self._data.get(name)

    def get(self, name: str, field: Field[T], default: T) -> T:
        """`name` converted by `field`, or `default` when absent or wrong (wrong is recorded)."""
        value = self.raw(name)
        if name not in self._data:
            return default
        converted = self.convert(self.key(name), value, field)
        return default if converted is None else converted

    def require(self, name: str, field: Field[T], fallback: T) -> T:
        """Like get, but absence is a problem; `fallback` is only returned alongside a problem."""
        if name not in self._data:
            self.known.add(name)
            if not self._broken:
                self.problems.add(self.key(name), field.expected, MISSING)
            return fallback
        return self.get(name, field, fallback)

    def convert(self, key: str, value: object, field: Field[T]) -> T | None:
        """`value` converted by `field`, or None with the problem recorded under `key`."""
        try:
            return field.convert(value)
        except Invalid as exc:
            self.problems.add(key, exc.expected or field.expected, describe(value))
        except (ValueError, TypeError):
            self.problems.add(key, field.expected, describe(value))
        return None

    def items(self, name: str) -> list[tuple[str, object]]:
        """The elements of the list under `name`, each with its dotted key like `x.watch[1]`."""
        value = self.raw(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problems.add(self.key(name), "a list", describe(value))
            return []
        return [(f"{self.key(name)}[{i}]", item) for i, item in enumerate(value)]

    def get_list(self, name: str, item: Field[T], default: tuple[T, ...]) -> tuple[T, ...]:
        """A list of `item`s under `name`; every bad element is its own problem."""
        if not self.has(name):
            self.known.add(name)
            return default
        out: list[T] = []
        for key, value in self.items(name):
            converted = self.convert(key, value, item)
            if converted is not None:
                out.append(converted)
        return tuple(out)

    def section(self, name: str) -> Section:
        return Section(self.problems, self.raw(name), self.key(name))

    def unknown_keys(self) -> list[str]:
        return [name for name in self._data if name not in self.known]


def finish(sections: Iterable[Section]) -> None:
    """Reports unknown keys; suggests a close name here, or the section a known name belongs in."""
    sections = list(sections)
    for section in sections:
        elsewhere = {
            name: other.key(name)
            for other in sections
            if other is not section
            for name in other.known
        }
        for name in section.unknown_keys():
            section.problems.add(section.key(name), _unknown_hint(name, section, elsewhere))


def _unknown_hint(name: str, section: Section, elsewhere: Mapping[str, str]) -> str:
    import difflib  # only a config with a typo needs it, not every command's start

    close = difflib.get_close_matches(name, sorted(section.known), n=1, cutoff=0.6)
    if close:
        return f"a known key (did you mean {close[0]}?)"
    if name in elsewhere:
        return f"a known key here (did you mean {elsewhere[name]}?)"
    return "a known key: one of " + ", ".join(sorted(section.known))


def integer(low: int, high: int) -> Field[int]:
    def convert(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid
        return value

    return Field(f"a whole number from {low} to {high}", convert)


def number(low: float, high: float) -> Field[float]:
    def convert(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid
        if not math.isfinite(value) or not low <= value <= high:
            raise Invalid
        return float(value)

    return Field(f"a number from {low} to {high}", convert)


def boolean() -> Field[bool]:
    def convert(value: object) -> bool:
        if not isinstance(value, bool):
            raise Invalid
        return value

    return Field("true or false (unquoted)", convert)


def text(expected: str, check: Callable[[str], bool] = bool) -> Field[str]:
    def convert(value: object) -> str:
        if not isinstance(value, str) or not check(value):
            raise Invalid
        return value

    return Field(expected, convert)


def quantity(
    expected: str, parse: Callable[[str | int | float], T], check: Callable[[T], bool]
) -> Field[T]:
    """A value in units (size, rate, duration) parsed by photonic.units, then range-checked."""

    def convert(value: object) -> T:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise Invalid
        parsed = parse(value)
        if not check(parsed):
            raise Invalid
        return parsed

    return Field(expected, convert)


def choice(options: Mapping[str, T]) -> Field[T]:
    def convert(value: object) -> T:
        if not isinstance(value, str) or value.lower() not in options:
            raise Invalid
        return options[value.lower()]

    return Field("one of: " + ", ".join(options), convert)


def path(base_dir: Path) -> Field[Path]:
    """A filesystem path; `~` expands, and relative paths resolve against the config's folder."""

    def convert(value: object) -> Path:
        if not isinstance(value, str) or not value.strip() or "\0" in value:
            raise Invalid
        # normpath, not resolve(): the path may not exist yet and symlinks are the user's choice.
        return Path(os.path.normpath(base_dir / Path(value).expanduser()))

    return Field("a path (relative paths are resolved against the config file's folder)", convert)


def host_port(min_port: int) -> Field[str]:
    """A "host:port" address; IPv6 hosts in brackets, as gRPC expects them."""

    def convert(value: object) -> str:
        if not isinstance(value, str):
            raise Invalid
        host, sep, port = value.strip().rpartition(":")
        if not sep or not port.isdigit() or not min_port <= int(port) <= 65535:
            raise Invalid
        if host.startswith("[") and host.endswith("]"):
            _ = ip_address_or_invalid(host[1:-1])
        elif not _HOSTNAME_RE.match(host):
            raise Invalid
        return value.strip()

    expected = f'a "host:port" address with port {min_port}-65535 (IPv6 as "[::1]:50051")'
    return Field(expected, convert)


def host() -> Field[str]:
    """A host name or IP address to bind to, without a port."""

    def convert(value: object) -> str:
        if not isinstance(value, str):
            raise Invalid
        if not _HOSTNAME_RE.match(value):
            _ = ip_address_or_invalid(value)
        return value

    return Field('a host name or IP address without a port, like "127.0.0.1"', convert)


def ip_address_or_invalid(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise Invalid from None
