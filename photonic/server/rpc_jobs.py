"""The PhotonicJobs servicer: thin. It authorizes, translates with jobs_wire, and calls the
jobs application layer (server/jobs/service.py); errors travel as status codes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc

from photonic import errors, jobs_wire
from photonic.jobs_model import WorkerHello
from photonic.logfmt import event
from photonic.models import Scope
from photonic.server.auth import Authorizer
from photonic.server.jobs.results import ResultHeader
from photonic.server.jobs.service import JobsService
from photonic.server.jobs.zip_intake import UploadIntake
from photonic.server.rpc_errors import answer, refuse
from photonic.v1 import jobs_pb2, jobs_pb2_grpc

log = logging.getLogger("photonic.server.jobs")


class JobsRpc(jobs_pb2_grpc.PhotonicJobsServicer):
    def __init__(self, auth: Authorizer, jobs: JobsService, zips: UploadIntake) -> None:
        self._auth = auth
        self._jobs = jobs
        self._zips = zips

    async def SubmitJob(self, request: jobs_pb2.SubmitJobRequest,
                        context: grpc.aio.ServicerContext) -> jobs_pb2.Job:
        caller = await self._auth.require(context, Scope.ADMIN, "SubmitJob")

        async def submit() -> jobs_pb2.Job:
            job = await self._jobs.submit(caller.agent_id, jobs_wire.request_from_wire(request))
            return jobs_wire.job_to_wire(job)

        return await answer(context, submit)

    async def SubmitZip(self, request_iterator: AsyncIterator[jobs_pb2.ZipChunk],
                        context: grpc.aio.ServicerContext) -> jobs_pb2.Job:
        caller = await self._auth.require(context, Scope.ADMIN, "SubmitZip")

        async def submit() -> jobs_pb2.Job:
            first = await anext(aiter(request_iterator), None)
            if first is None or not first.HasField("submit"):
                raise errors.InvalidInput("the first message of SubmitZip says what to run")
            request = jobs_wire.request_from_wire(first.submit)

            async def data() -> AsyncIterator[bytes]:
                yield first.data
                async for chunk in request_iterator:
                    yield chunk.data

            job = await self._zips.submit_zip(caller.agent_id, request, first.file_name,
                                              data())
            return jobs_wire.job_to_wire(job)

        return await answer(context, submit)

    async def GetJob(self, request: jobs_pb2.GetJobRequest,
                     context: grpc.aio.ServicerContext) -> jobs_pb2.Job:
        await self._auth.require(context, Scope.ADMIN, "GetJob")
        return await answer(context, lambda: self._wire_job(request.job_id))

    async def _wire_job(self, job_id: str) -> jobs_pb2.Job:
        return jobs_wire.job_to_wire(await self._jobs.get(job_id))

    async def ListJobs(self, request: jobs_pb2.ListJobsRequest,
                       context: grpc.aio.ServicerContext) -> jobs_pb2.ListJobsResponse:
        await self._auth.require(context, Scope.ADMIN, "ListJobs")

        async def find() -> jobs_pb2.ListJobsResponse:
            jobs = await self._jobs.find(jobs_wire.filter_from_wire(request))
            return jobs_pb2.ListJobsResponse(jobs=[jobs_wire.job_to_wire(j) for j in jobs])

        return await answer(context, find)

    async def CancelJob(self, request: jobs_pb2.CancelJobRequest,
                        context: grpc.aio.ServicerContext) -> jobs_pb2.Job:
        caller = await self._auth.require(context, Scope.ADMIN, "CancelJob")

        async def cancel() -> jobs_pb2.Job:
            return jobs_wire.job_to_wire(await self._jobs.cancel(caller.agent_id,
                                                                 request.job_id))

        return await answer(context, cancel)

    async def Work(self, request_iterator: AsyncIterator[jobs_pb2.WorkerMessage],
                   context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[jobs_pb2.WorkAssignment]:
        caller = await self._auth.require(context, Scope.WORK, "Work")
        first = await anext(aiter(request_iterator), None)
        hello = jobs_wire.report_from_wire(first) if first is not None else None
        if not isinstance(hello, WorkerHello):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "the first message of Work is a Hello")
            return
        session = await self._jobs.worker_hello(caller.agent_id, hello)
        reader = asyncio.create_task(self._read_reports(session, request_iterator))
        try:
            while True:
                getter = asyncio.ensure_future(session.orders.get())
                await asyncio.wait([getter, reader], return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                order = getter.result()
                if order is None:
                    break
                yield jobs_wire.order_to_wire(order)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self._jobs.worker_gone(session)

    async def _read_reports(self, session: object,
                            request_iterator: AsyncIterator[jobs_pb2.WorkerMessage]) -> None:
        from photonic.server.jobs.dispatch import WorkerSession

        assert isinstance(session, WorkerSession)
        async for message in request_iterator:
            report = jobs_wire.report_from_wire(message)
            if report is None:
                continue
            try:
                await self._jobs.worker_report(session, report)
            except errors.PhotonicError as exc:
                event(log, "work_report_failed", logging.WARNING,
                      worker=session.worker_id, error=str(exc))

    async def FetchBlob(self, request: jobs_pb2.FetchBlobRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[jobs_pb2.BlobChunk]:
        caller = await self._auth.require_any(context, (Scope.WORK, Scope.ADMIN), "FetchBlob")
        try:
            async for offset, data, total in self._jobs.fetch(
                    caller.agent_id, caller.may(Scope.ADMIN), request.sha256, request.offset,
                    request.job_id, request.attempt):
                yield jobs_pb2.BlobChunk(offset=offset, data=data, raw_size=len(data),
                                         total_size=total)
        except errors.PhotonicError as exc:
            await refuse(context, exc)

    async def UploadResult(self, request_iterator: AsyncIterator[jobs_pb2.ResultChunk],
                           context: grpc.aio.ServicerContext
                           ) -> jobs_pb2.UploadResultResponse:
        caller = await self._auth.require(context, Scope.WORK, "UploadResult")

        async def upload() -> jobs_pb2.UploadResultResponse:
            first = await anext(aiter(request_iterator), None)
            if first is None:
                raise errors.InvalidInput("UploadResult sent nothing")
            header = ResultHeader(first.job_id, first.attempt, first.sha256.lower(),
                                  first.total_size, first.name)

            async def rest() -> AsyncIterator[tuple[int, bytes]]:
                async for chunk in request_iterator:
                    yield chunk.offset, chunk.data

            size = await self._jobs.upload_result(caller.agent_id, header, first.data,
                                                  first.offset, rest())
            return jobs_pb2.UploadResultResponse(sha256=header.sha256, size=size)

        return await answer(context, upload)
