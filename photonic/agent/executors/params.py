"""Reading a job's parameters (a JSON object a person wrote): every wrong key or value is the
job's own fault, reported as a non-retryable ExecutorError that names the key."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from photonic.agent.executors.base import ExecutorError


def reject_unknown(params: Mapping[str, object], known: Collection[str], executor: str) -> None:
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ExecutorError(
            f"{executor}: unknown parameter {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(sorted(known))}", retryable=False)


def number(params: Mapping[str, object], key: str, default: float, low: float, high: float
           ) -> float:
    """A number within [low, high]; bools are refused (JSON true is not 1)."""
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExecutorError(f"parameter {key!r} must be a number, not {value!r}")
    if not low <= value <= high:
        raise ExecutorError(f"parameter {key!r} must be between {low:g} and {high:g}, "
                            f"not {value!r}")
    return float(value)


def optional_integer(params: Mapping[str, object], key: str, low: int, high: int
                     ) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExecutorError(f"parameter {key!r} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise ExecutorError(f"parameter {key!r} must be between {low} and {high}, "
                            f"not {value!r}")
    return value


def choice(params: Mapping[str, object], key: str, choices: tuple[str, ...]) -> str:
    """One of choices; the first is the default."""
    value = params.get(key, choices[0])
    if value not in choices:
        raise ExecutorError(f"parameter {key!r} must be one of {', '.join(choices)}, "
                            f"not {value!r}")
    return str(value)
