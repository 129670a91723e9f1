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


_EXPORT_CHOICES: dict[str, tuple[str, ...]] = {
    "format": ("JPEG", "TIFF", "PNG", "DNG", "ORIGINAL"),
    "color_space": ("sRGB", "AdobeRGB", "ProPhotoRGB"),
    "sharpening": ("none", "screen", "matte", "glossy"),
    "metadata": ("all", "copyright", "none"),
}
_EXPORT_NUMBERS: dict[str, tuple[int, int]] = {"long_edge": (0, 65_000), "quality": (0, 100)}


def _develop(v: object) -> bool:
    """{"preset": name or UUID} and/or {"settings": {Lightroom develop setting: value}}."""
    if not isinstance(v, dict) or not v or set(v) - {"preset", "settings"}:
        return False
    preset, settings = v.get("preset", ""), v.get("settings", {})
    return (isinstance(preset, str) and len(preset) <= 200 and isinstance(settings, dict)
            and len(settings) <= 500 and all(isinstance(k, str) for k in settings))


def _export(v: object) -> bool:
    if not isinstance(v, dict) or set(v) - set(_EXPORT_CHOICES) - set(_EXPORT_NUMBERS):
        return False
    for key, value in v.items():
        if key in _EXPORT_CHOICES and value not in _EXPORT_CHOICES[key]:
            return False
        if key in _EXPORT_NUMBERS:
            low, high = _EXPORT_NUMBERS[key]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                return False
    return True


_EXPORT_EXPECTED = ("an object of " + ", ".join(
    f"{k} ({'|'.join(c)})" for k, c in _EXPORT_CHOICES.items())
    + ", long_edge (pixels, 0 = full size), quality (0-100)")

KINDS: dict[str, JobKind] = {k.name: k for k in (
    JobKind("bgremove", "cut the subject out: a PNG with a transparent background",
            params={"threshold": (_number(0, 1), "a number from 0 to 1"),
                    "feather": (_number(0, 50), "a number of pixels from 0 to 50")}),
    JobKind("facecrop", "crop to the face (the largest, or each one)",
            params={"margin": (_number(0, 2), "a fraction of the face box from 0 to 2"),
                    "size": (_side, "an output side in pixels from 16 to 4096"),
                    "which": (lambda v: v in ("largest", "all"), "'largest' or 'all'")}),
    JobKind("lightroom", "develop and export in Lightroom Classic through its plugin",
            params={"develop": (_develop, 'an object with "preset" (a name or UUID) and/or '
                                          '"settings" (develop settings by name)'),
                    "export": (_export, _EXPORT_EXPECTED)}),
)}


def job_kind(name: str) -> JobKind:
    kind = KINDS.get(name)
    if kind is None:
        raise errors.InvalidInput(f"unknown job type {name!r}; known types: "
                                  f"{', '.join(sorted(KINDS))}")
    return kind
