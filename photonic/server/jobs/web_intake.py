"""Uploads from the web processing page, as the application layer sees them: the job kind and
its parameters as the form sends them (text), then file parts, photos and ZIPs mixed, held
together to one cap on bytes and one on files. The files go through the same intake as
SubmitZip (zip_intake), so the ZIP safety rules, the `_uploads/` library folder and the batch
job are one behaviour for both."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

from photonic import errors
from photonic.jobs_model import Job, JobRequest
from photonic.server.jobs.zip_intake import StagedUpload, UploadIntake

WEB_KINDS = ("bgremove", "facecrop")
"""What the processing page runs (Lightroom jobs need a library photo and a plugin)."""
AUDIT_ACTION = "SubmitUpload"


@dataclass(frozen=True)
class WebUploadLimits:
    max_bytes: int
    """All the files of one upload together, as received (ZIPs compressed)."""
    max_files: int
    """File parts (photos and ZIPs) in one upload."""


class WebUploads:
    def __init__(self, intake: UploadIntake, limits: WebUploadLimits) -> None:
        self._intake = intake
        self.limits = limits

    def open(self, kind: str, params_json: str) -> WebUpload:
        """An upload for this kind and these parameters (a JSON object as text, empty for
        none), refused before any file is received when either is wrong. Use it as
        `async with`: whatever it received is removed when the block ends."""
        if kind not in WEB_KINDS:
            raise errors.InvalidInput(f"kind must be one of {', '.join(WEB_KINDS)}, not "
                                      f"{kind[:40]!r}")
        request = JobRequest(kind, params=_params(params_json))
        return WebUpload(self._intake.open(request), self.limits)


class WebUpload:
    """One upload's files, counted against the caps as they stream in."""

    def __init__(self, staged: StagedUpload, limits: WebUploadLimits) -> None:
        self._staged = staged
        self._limits = limits
        self._files = 0
        self._bytes = 0

    async def __aenter__(self) -> WebUpload:
        await self._staged.__aenter__()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._staged.__aexit__(kind, exc, tb)

    async def add(self, file_name: str, data: AsyncIterator[bytes]) -> None:
        """One file part: a ZIP (by its name) is judged and its images copied out; anything
        else must be a photo by its name."""
        self._files += 1
        if self._files > self._limits.max_files:
            raise errors.TooLarge(f"an upload may hold at most {self._limits.max_files} "
                                  "files; send a ZIP, or several uploads")
        counted = self._counted(data)
        if file_name.lower().endswith(".zip"):
            await self._staged.add_zip(file_name, counted)
        else:
            await self._staged.add_photo(file_name, counted)

    async def submit(self, submitter: str) -> Job:
        if self._files == 0:
            raise errors.InvalidInput("the upload holds no file: send one or more `file` "
                                      "parts (photos or .zip)")
        return await self._staged.submit(submitter, AUDIT_ACTION)

    async def _counted(self, data: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for block in data:
            self._bytes += len(block)
            if self._bytes > self._limits.max_bytes:
                raise errors.TooLarge(f"the upload is larger than the "
                                      f"{self._limits.max_bytes} bytes one upload may carry "
                                      "(jobs.web_upload_max)")
            yield block


def _params(text: str) -> dict[str, object]:
    if not text.strip():
        return {}
    try:
        params = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        params = None
    if not isinstance(params, dict):
        raise errors.InvalidInput('params must be a JSON object, e.g. {"size": 512} or {}')
    return params
