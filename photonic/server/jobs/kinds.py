"""The job kinds the server accepts and the parameters each takes (the same bounds as the
agent's executors, photonic/agent/executors): a submit naming an
unknown kind or a bad parameter is refused before anything is queued."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from photonic import errors

Check = Callable[[object], bool]


def _number(low: float, high: float) -> Check:
    return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high


def _side(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 4096


@dataclass(frozen=True)
class JobKind:
    name: str
    summary: str
    required: tuple[str, ...] = ()
    params: Mapping[str, tuple[Check, str]] = field(default_factory=dict)

    def check(self, params: Mapping[str, object]) -> None:
        for name in self.required:
            if name not in params:
                raise errors.InvalidInput(f"job type {self.name!r} needs the parameter "
                                          f"{name!r}")
        for name, value in params.items():
            rule = self.params.get(name)
            if rule is None:
                known = ", ".join(sorted(self.params)) or "none"
                raise errors.InvalidInput(f"job type {self.name!r} has no parameter "
                                          f"{name!r} (known: {known})")
            ok, expected = rule
            if not ok(value):
                raise errors.InvalidInput(f"parameter {name!r} of {self.name!r}: expected "
                                          f"{expected}, got {value!r}")


KINDS: dict[str, JobKind] = {k.name: k for k in (
    JobKind("bgremove", "cut the subject out: a PNG with a transparent background",
            params={"threshold": (_number(0, 1), "a number from 0 to 1"),
                    "feather": (_number(0, 50), "a number of pixels from 0 to 50")}),
    JobKind("facecrop", "crop to the face (the largest, or each one)",
            params={"margin": (_number(0, 2), "a fraction of the face box from 0 to 2"),
                    "size": (_side, "an output side in pixels from 16 to 4096"),
                    "which": (lambda v: v in ("largest", "all"), "'largest' or 'all'")}),
)}


def job_kind(name: str) -> JobKind:
    kind = KINDS.get(name)
    if kind is None:
        raise errors.InvalidInput(f"unknown job type {name!r}; known types: "
                                  f"{', '.join(sorted(KINDS))}")
    return kind
