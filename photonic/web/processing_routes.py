"""The processing page's server side: POST /api/v1/uploads (multipart: `kind`, `params`, then
`file` parts, photos or ZIPs, each streamed to disk in chunks as it arrives) answers the new
batch job; GET /api/v1/jobs/{job}/results.zip streams the outputs of a job and its children
as one ZIP. Handlers read the request and call WebUploads and ResultsArchive; no paths here."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web

from photonic import errors
from photonic.jobs_client import job_to_dict
from photonic.server.jobs.results_archive import ResultsArchive
from photonic.server.jobs.web_intake import WebUpload, WebUploads
from photonic.web.access import caller_of

log = logging.getLogger("photonic.web")

UPLOADS: web.AppKey[WebUploads] = web.AppKey("uploads", WebUploads)
RESULTS: web.AppKey[ResultsArchive] = web.AppKey("results", ResultsArchive)
FIELD_MAX_BYTES = 16 * 1024
"""The most a text field (kind, params) may hold."""
CHUNK_BYTES = 256 * 1024
"""How much of a file part is read from the socket at a time."""
ENVELOPE_BYTES = 1 << 20
"""What a request may declare beyond the files' cap for the multipart boundaries, part
headers and fields, before it is refused by its Content-Length alone."""
_TEXT_FIELDS = ("kind", "params")


async def upload(request: web.Request) -> web.Response:
    """201 with the batch job; 400 for a bad field or file, 413 past a cap (errors.TooLarge),
    and then nothing of the upload is kept."""
    uploads = request.app[UPLOADS]
    declared = request.content_length
    if declared is not None and declared > uploads.limits.max_bytes + ENVELOPE_BYTES:
        raise errors.TooLarge(f"the upload declares {declared} bytes; one upload may carry "
                              f"{uploads.limits.max_bytes} (jobs.web_upload_max)")
    if request.content_type != "multipart/form-data":
        raise errors.InvalidInput("send multipart/form-data: the fields kind and params, "
                                  "then one or more file parts")
    reader = await request.multipart()
    fields: dict[str, str] = {}
    part = await reader.next()
    while isinstance(part, BodyPartReader) and part.name in _TEXT_FIELDS:
        fields[str(part.name)] = await _text(part)
        part = await reader.next()
    if "kind" not in fields:
        raise errors.InvalidInput("send the field kind (bgremove or facecrop) and then "
                                  "params, before the files")
    async with uploads.open(fields["kind"], fields.get("params", "")) as batch:
        while part is not None:
            await _add_file(batch, part)
            part = await reader.next()
        job = await batch.submit(str(caller_of(request).agent_id))
    return web.json_response(job_to_dict(job), status=201)


async def _add_file(batch: WebUpload, part: object) -> None:
    if not isinstance(part, BodyPartReader) or part.name != "file":
        name = part.name if isinstance(part, BodyPartReader) else "a nested multipart"
        raise errors.InvalidInput(f"after kind and params send only parts named file, not "
                                  f"{str(name)[:40]!r}")
    await batch.add(part.filename or "", _chunks(part))


async def _text(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(FIELD_MAX_BYTES):
        data += chunk
        if len(data) > FIELD_MAX_BYTES:
            raise errors.InvalidInput(f"the field {part.name!r} is longer than "
                                      f"{FIELD_MAX_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidInput(f"the field {part.name!r} is not UTF-8 text") from None


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK_BYTES):
        yield chunk


async def results_zip(request: web.Request) -> web.StreamResponse:
    archive = request.app[RESULTS]
    bundle = await archive.bundle(request.match_info["job"])
    response = web.StreamResponse(headers={
        "Content-Type": "application/zip",
        "Content-Disposition": f'attachment; filename="{bundle.file_name}"',
        "Cache-Control": "no-store"})
    await response.prepare(request)
    try:
        async for block in archive.stream(bundle):
            await response.write(block)
    except (ConnectionError, OSError):
        raise  # the client went away: nothing to tell it
    except Exception:
        # The status line is sent: end the connection without the last chunk, so the client
        # sees a cut-off download, never a short archive that looks complete.
        cid = uuid.uuid4().hex[:12]
        log.exception("results.zip failed midway", extra={"correlation_id": cid})
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


def add_routes(app: web.Application, uploads: WebUploads, results: ResultsArchive) -> None:
    app[UPLOADS] = uploads
    app[RESULTS] = results
    app.router.add_post("/api/v1/uploads", upload)
    app.router.add_get("/api/v1/jobs/{job}/results.zip", results_zip)
