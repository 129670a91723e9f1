"""`photonic models fetch`: the executors' model files. Placeholder: the executors helper
fills this in."""

from __future__ import annotations

import argparse
from typing import Any


def add_models_parser(sub: Any) -> None:
    sub.add_parser("models", help="fetch and check the model files executors use")


def run_models(args: argparse.Namespace) -> int:
    raise NotImplementedError
