"""The words and exit status of `photonic verify` around a StoreScrub run."""

from __future__ import annotations

import datetime as dt
import json
import sys

from photonic._configobjects import require_local_objects
from photonic.config import ServerConfig
from photonic.errors import InvalidInput
from photonic.server.scrub import StoreScrub, VerifyReport
from photonic.server.storage.catalogs import open_catalog, require_catalog
from photonic.server.store import ContentStore
from photonic.units import format_rate, format_size, parse_rate

EXIT_DAMAGED = 1


def run_verify(config: ServerConfig, *, since: dt.datetime | None, rate: str,
               as_json: bool) -> int:
    """0 when every object checked is intact; 1 when any is damaged or missing."""
    require_local_objects(config.config_path, config.objects, "verify")
    try:
        rate_bytes_per_s = parse_rate(rate)
    except ValueError as exc:
        raise InvalidInput(f"--rate: {exc}") from None
    require_catalog(config.catalog)
    catalog = open_catalog(config.catalog)
    try:
        scrub = StoreScrub(ContentStore(config.storage_path), catalog,
                           rate_bytes_per_s=rate_bytes_per_s,
                           progress=lambda line: print(line, file=sys.stderr, flush=True))
        since_ms = int(since.timestamp() * 1000) if since is not None else 0
        report = scrub.run(since_ms)
    finally:
        catalog.close()
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print_report(report)
    return 0 if report.intact else EXIT_DAMAGED


def print_report(report: VerifyReport) -> None:
    speed = report.bytes_checked / report.seconds if report.seconds > 0 else 0.0
    print(f"verified {report.objects_checked} stored photos, {format_size(report.bytes_checked)}"
          f" re-hashed in {report.seconds:.1f} s ({format_rate(speed)})")
    for damaged in report.damaged:
        print(f"DAMAGED {damaged.sha256}: {damaged.reason}")
        for path in damaged.library_paths:
            print(f"    serves {path}")
    if report.library_differs:
        print(f"{len(report.library_differs)} library entries are not the stored photo (a "
              "person replaced or removed them; the stored photo is intact):")
        for path in report.library_differs:
            print(f"    {path}")
    print("all stored photos are intact" if report.intact
          else f"{len(report.damaged)} stored photos are damaged")
