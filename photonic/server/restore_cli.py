"""The words and exit status of `photonic restore --from NODE` around a Restorer run: a
progress line on stderr while it runs, a summary at the end; exit 1 when anything failed
(re-running fetches only what is still missing)."""

from __future__ import annotations

import asyncio
import json
import sys

from photonic._configobjects import require_local_objects
from photonic.config import ServerConfig
from photonic.errors import InvalidInput
from photonic.server.archive_client import ArchiveClient, ObjectSource, own_certificate_channel
from photonic.server.library import Library
from photonic.server.restore import Restorer, RestoreReport
from photonic.server.sealed_source import sealed_reader
from photonic.server.storage.catalogs import open_catalog
from photonic.server.store import ContentStore
from photonic.tls import certificate_info
from photonic.units import format_size

EXIT_INCOMPLETE = 1
READY_TIMEOUT_S = 10.0


def run_restore(config: ServerConfig, node: str, *, library_path: str, as_json: bool) -> int:
    require_local_objects(config.config_path, config.objects, "restore")
    endpoint = _endpoint_of(config, node)
    report = asyncio.run(_restore(config, node, endpoint, library_path))
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        _print_summary(node, report)
    return 0 if report.ok else EXIT_INCOMPLETE


def _endpoint_of(config: ServerConfig, node: str) -> str:
    """A configured node's endpoint by name (backup_nodes, repair_from), or host:port as is."""
    for name, endpoint in [*((n.name, n.endpoint) for n in config.backup_nodes),
                           *((n.name, n.endpoint) for n in config.scrub.repair_from)]:
        if name == node:
            return endpoint
    if ":" in node:
        return node
    known = [n.name for n in config.backup_nodes] + [n.name for n in config.scrub.repair_from]
    raise InvalidInput(f"--from {node}: not a node in storage.backup_nodes or "
                       f"storage.repair_from ({', '.join(known) or 'none configured'}) "
                       "nor a host:port")


async def _restore(config: ServerConfig, node: str, endpoint: str,
                   library_path: str) -> RestoreReport:
    client = ArchiveClient(node, endpoint, own_certificate_channel(config.security)(endpoint))
    source: ObjectSource = client
    try:
        await client.ready(READY_TIMEOUT_S)
        if any(n.name == node and n.encrypted for n in config.backup_nodes):
            # Its index opens with the key before anything is stored here: a wrong key
            # stops the restore with nothing written.
            source = sealed = sealed_reader(config, client)
            await sealed.load()
    except BaseException:
        await client.close()
        raise
    store = ContentStore(config.storage_path)
    catalog = open_catalog(config.catalog)
    # An archive node files this server's library under this server's certificate id.
    identity = certificate_info(config.security.cert_path).subject_cn
    restorer = Restorer(source, store, catalog, Library(store, catalog), node_folder=identity,
                        progress=_progress_line)
    try:
        return await restorer.run(library_path)
    finally:
        await restorer.close()
        catalog.close()


def _progress_line(r: RestoreReport) -> None:
    print(f"restore: {r.objects} objects ({r.fetched} fetched, {r.present} already here, "
          f"{len(r.failed)} failed), {format_size(r.bytes_fetched)} fetched",
          file=sys.stderr, flush=True)


def _print_summary(node: str, r: RestoreReport) -> None:
    print(f"restored from {node}: {r.objects} objects, {r.fetched} fetched "
          f"({format_size(r.bytes_fetched)}), {r.present} already here; "
          f"{r.paths_recorded} library paths recorded, {r.paths_linked} relinked "
          f"in {r.seconds:.1f} s")
    for item, why in r.failed:
        print(f"FAILED {item}: {why}")
    print("restore complete" if r.ok else
          f"{len(r.failed)} items were not restored; run the same command again to retry them")
