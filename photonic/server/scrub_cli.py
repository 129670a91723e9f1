"""`photonic scrub --now`: one full scrub pass over the server's store (the `photonic verify`
walk, at storage.scrub_rate), then a repair from the configured replicas of every object left
damaged or missing, this pass's and earlier ones'. Exit 0 when nothing is left damaged; 1 with
the list of what no replica gave back. Safe beside a running server, as verify is."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field

from photonic._configobjects import require_local_objects
from photonic.config import ServerConfig
from photonic.server.archive_client import repair_sources
from photonic.server.catalog import Catalog
from photonic.server.library import Library
from photonic.server.repair import ObjectRepairer, ReplicaFetcher
from photonic.server.scrub import StoreScrub, VerifyReport
from photonic.server.scrub_service import SCRUB_ACTOR
from photonic.server.storage.catalogs import open_catalog, open_scrub_tables, require_catalog
from photonic.server.store import ContentStore
from photonic.server.verify_cli import print_report

EXIT_UNREPAIRED = 1


@dataclass
class ScrubOutcome:
    report: VerifyReport
    repaired: list[tuple[str, str]] = field(default_factory=list)  # (sha256, node)
    unrepaired: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    """(sha256, why, library paths it serves)"""

    def as_json(self) -> dict[str, object]:
        return {**self.report.as_json(),
                "repaired": [{"sha256": s, "from": n} for s, n in self.repaired],
                "unrepaired": [{"sha256": s, "reason": why, "library_paths": list(paths)}
                               for s, why, paths in self.unrepaired],
                "ok": not self.unrepaired}


def run_scrub_now(config: ServerConfig, *, as_json: bool) -> int:
    require_local_objects(config.config_path, config.objects, "scrub")
    require_catalog(config.catalog)
    outcome = asyncio.run(_scrub(config))
    if as_json:
        print(json.dumps(outcome.as_json(), indent=2))
    else:
        _print_outcome(outcome)
    return EXIT_UNREPAIRED if outcome.unrepaired else 0


async def _scrub(config: ServerConfig) -> ScrubOutcome:
    store = ContentStore(config.storage_path)
    catalog = open_catalog(config.catalog)
    tables = open_scrub_tables(config.storage_path, config.catalog, catalog)
    repairer = ObjectRepairer(ReplicaFetcher(store, repair_sources(config)), store, catalog,
                              Library(store, catalog))
    try:
        scrub = StoreScrub(store, catalog, rate_bytes_per_s=config.scrub.rate_bytes_per_s,
                           progress=lambda line: print(line, file=sys.stderr, flush=True))
        report = await asyncio.to_thread(scrub.run)
        outcome = ScrubOutcome(report)
        for damaged in report.damaged:
            await asyncio.to_thread(_record_missing, catalog, damaged.sha256, damaged.reason)
            await asyncio.to_thread(catalog.audit, SCRUB_ACTOR, "ScrubQuarantine",
                                    damaged.sha256, "quarantined", damaged.reason)
        for item in await asyncio.to_thread(tables.unrepaired):
            fetched = await repairer.repair(item.sha256, item.size)
            if fetched.ok:
                outcome.repaired.append((item.sha256, fetched.node))
                detail = f"fetched from {fetched.node}, verified and stored"
            else:
                why = f"{item.reason}; no replica gave it back: {'; '.join(fetched.problems)}"
                outcome.unrepaired.append((item.sha256, why, item.library_paths))
                detail = why
            await asyncio.to_thread(catalog.audit, SCRUB_ACTOR, "ScrubRepair", item.sha256,
                                    "ok" if fetched.ok else "failed", detail)
        return outcome
    finally:
        await repairer.close()
        tables.close()
        catalog.close()


def _record_missing(catalog: Catalog, sha256: str, reason: str) -> None:
    """A missing object has no quarantined file, but is recorded as unrepaired all the same."""
    if not catalog.open_quarantine(sha256):
        catalog.record_quarantine(sha256, "", reason)


def _print_outcome(outcome: ScrubOutcome) -> None:
    print_report(outcome.report)
    for sha256, node in outcome.repaired:
        print(f"REPAIRED {sha256} from {node}")
    for sha256, why, paths in outcome.unrepaired:
        print(f"UNREPAIRED {sha256}: {why}")
        for path in paths:
            print(f"    serves library/{path}")
    if outcome.unrepaired:
        print(f"{len(outcome.unrepaired)} stored photos are damaged and no replica has them; "
              "their damaged bytes are kept in quarantine/")
    else:
        print("nothing is left damaged")
