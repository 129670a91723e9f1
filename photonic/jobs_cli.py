"""`photonic jobs ...`: submit, follow, cancel and download processing jobs (admin scope).
Placeholder: the jobs CLI helper fills this in."""

from __future__ import annotations

import argparse
from typing import Any


def add_jobs_parser(sub: Any) -> None:
    sub.add_parser("jobs", help="submit, follow and download processing jobs (admin scope)")


def run_jobs(args: argparse.Namespace) -> int:
    raise NotImplementedError
