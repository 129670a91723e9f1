"""`photonic jobs ...`: submit, follow, cancel and download processing jobs with an admin
certificate. Parses arguments, calls JobsClient, hands what it got to jobs_view."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path, PurePosixPath

import grpc
from rich.console import Console

from photonic import errors, jobs_view
from photonic.config import load_agent_config
from photonic.jobs_client import JobsClient, connect_first, to_json
from photonic.jobs_model import Job, JobFilter, JobOutput, JobRequest, JobState
from photonic.media.hashing import sha256_file
from photonic.tls import channel_credentials
from photonic.units import format_size

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
POLL_INTERVAL_S = 0.5
WATCH_ALL_LIMIT = 200


class UsageError(errors.PhotonicError):
    """The command line itself is wrong; exits 2 like argparse does."""


def parse_params(pairs: Sequence[str]) -> dict[str, object]:
    """`["threshold=0.5", "which=all", "flag=true"]` -> {"threshold": 0.5, "which": "all",
    "flag": True}: a value that parses as JSON is that value, anything else is a string."""
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {pair!r}: expected KEY=VALUE")
        try:
            value: object = json.loads(text)
        except json.JSONDecodeError:
            value = text
        params[key.strip()] = value
    return params


def build_request(args: argparse.Namespace) -> JobRequest:
    """The JobRequest an argument list asks for (the ZIP travels beside it)."""
    if args.priority < -1000 or args.priority > 1000:
        raise UsageError("--priority must be between -1000 and 1000")
    return JobRequest(
        kind=args.kind, input_sha256=tuple(s.strip().lower() for s in args.photo or ()),
        params=parse_params(args.param), library_paths=tuple(args.path or ()),
        library_folder=args.folder or "", shoot_of=args.shoot or "",
        requires=tuple(args.require), priority=args.priority)


def run_jobs(args: argparse.Namespace) -> int:
    try:
        endpoints, credentials = _connection(args)
        return asyncio.run(_run(args, endpoints, credentials))
    except UsageError as exc:
        print(f"photonic: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _connection(args: argparse.Namespace) -> tuple[list[str], grpc.ChannelCredentials]:
    """Server endpoints and admin credentials, from --server/--cert/--key/--ca or --config."""
    if args.server:
        missing = [f"--{n}" for n in ("cert", "key", "ca") if getattr(args, n) is None]
        if missing or args.config is not None:
            raise UsageError("--server needs --cert, --key and --ca (and no --config)"
                             if missing else "give --server or --config, not both")
        return [args.server], channel_credentials(args.cert, args.key, args.ca)
    if args.cert or args.key or args.ca:
        raise UsageError("--cert, --key and --ca go with --server")
    config = load_agent_config(args.config or Path("agent.yaml"))
    sec = config.security
    return (list(config.server_endpoints),
            channel_credentials(sec.cert_path, sec.key_path, sec.ca_path))


async def _run(args: argparse.Namespace, endpoints: Sequence[str],
               credentials: grpc.ChannelCredentials) -> int:
    commands: dict[str, Callable[[JobsClient, argparse.Namespace], Awaitable[int]]] = {
        "submit": _submit, "status": _status, "list": _list, "cancel": _cancel,
        "download": _download, "watch": _watch,
    }
    client = await connect_first(endpoints, credentials)
    try:
        return await commands[args.jobs_command](client, args)
    finally:
        await client.close()


async def _submit(client: JobsClient, args: argparse.Namespace) -> int:
    request = build_request(args)
    job = (await client.submit_zip(args.zip, request) if args.zip
           else await client.submit(request))
    if not args.wait:
        print(to_json(job) if args.json else f"submitted {jobs_view.summary(job)}")
        return EXIT_OK
    if not args.json:
        print(f"submitted {jobs_view.summary(job)}", file=sys.stderr)
    return await _follow(client, job.job_id, as_json=args.json)


async def _status(client: JobsClient, args: argparse.Namespace) -> int:
    job = await client.get(args.job_id, with_children=True)
    if args.json:
        print(to_json(job))
        return EXIT_OK
    children = await client.children(job.job_id) if job.is_batch else []
    Console().print(jobs_view.job_details(job, children))
    return EXIT_OK


async def _list(client: JobsClient, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    jobs = await client.list(JobFilter(state=args.state, kind=args.kind,
                                       top_level=not args.children, limit=args.limit))
    if args.json:
        print(to_json(jobs))
    elif not jobs:
        print("no jobs")
    else:
        Console().print(jobs_view.jobs_table(jobs))
    return EXIT_OK


async def _cancel(client: JobsClient, args: argparse.Namespace) -> int:
    job = await client.cancel(args.job_id)
    print(to_json(job) if args.json else jobs_view.summary(job))
    return EXIT_OK


async def _watch(client: JobsClient, args: argparse.Namespace) -> int:
    if args.job_id:
        return await _follow(client, args.job_id, as_json=False)
    return await _follow_all(client)


async def _follow(client: JobsClient, job_id: str, *, as_json: bool) -> int:
    """Polls the job until it ends, with a live bar on stderr; exit 0 only if it (and every
    child of a batch) completed."""
    job = await client.get(job_id)
    with jobs_view.ProgressBoard() as board:
        while True:
            board.show([job])
            if job.state.terminal:
                break
            await asyncio.sleep(POLL_INTERVAL_S)
            job = await client.get(job_id)
    ok, sentence = jobs_view.outcome(job)
    if as_json:
        print(to_json(job))
    if not ok:
        print(f"photonic: {sentence}", file=sys.stderr)
    elif not as_json:
        print(sentence)
    return EXIT_OK if ok else EXIT_FAILED


async def _follow_all(client: JobsClient) -> int:
    """Bars for every top-level job that is not finished, until none is left running."""
    active = JobFilter(top_level=True, limit=WATCH_ALL_LIMIT)
    followed: dict[str, Job] = {}
    with jobs_view.ProgressBoard() as board:
        while True:
            for job in await client.list(active):
                if not job.state.terminal or job.job_id in followed:
                    followed[job.job_id] = job
            board.show(list(followed.values()))
            if all(j.state.terminal for j in followed.values()):
                break
            await asyncio.sleep(POLL_INTERVAL_S)
            followed.update({j.job_id: await client.get(j.job_id)
                             for j in followed.values() if not j.state.terminal})
    if not followed:
        print("no active jobs")
    return EXIT_OK


async def _download(client: JobsClient, args: argparse.Namespace) -> int:
    job = await client.get(args.job_id, with_children=True)
    jobs = await client.children(job.job_id) if job.is_batch else [job]
    if not job.is_batch and job.state is not JobState.COMPLETED:
        raise errors.InvalidInput(f"job {job.job_id} is {job.state.value}; only a completed "
                                  "job has outputs to download")
    plan = download_plan(jobs)
    args.output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    for _job, output, name in plan:
        dest = args.output / name
        if dest.is_file() and (await asyncio.to_thread(sha256_file, dest))[0] == output.sha256:
            print(f"{dest} already there")
            continue
        # By hash alone: a fetch naming a job is a worker's, and needs that job's lease.
        size = await client.fetch_blob(output.sha256, dest)
        print(f"wrote {dest} ({format_size(size)})")
    without = [j for j in jobs if not j.outputs]
    if without:
        states = Counter(j.state.value for j in without)
        print(f"{len(without)} of {len(jobs)} jobs have no outputs ("
              + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) + ")",
              file=sys.stderr)
    print(f"{len(plan)} files in {args.output} ({time.monotonic() - started:.1f}s)")
    return EXIT_OK if plan else EXIT_FAILED


def download_plan(jobs: Sequence[Job]) -> list[tuple[Job, JobOutput, str]]:
    """(job, output, file name) for every output: named as the worker named it (after its
    input), with the job's id added to every name two outputs share."""
    named = [(job, out, safe_file_name(out.name, out.sha256)) for job in jobs
             for out in job.outputs]
    shared = Counter(name for _, _, name in named)
    by_job = [_tagged(name, job.job_id) if shared[name] > 1 else name
              for job, _, name in named]
    still = Counter(by_job)  # one job with two outputs of one name: add the hash too
    return [(job, out, _tagged(name, f"{job.job_id}-{out.sha256[:8]}") if still[mine] > 1
             else mine) for (job, out, name), mine in zip(named, by_job, strict=True)]


def _tagged(name: str, tag: str) -> str:
    """"portrait.png" + "j42" -> "portrait.j42.png"."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.{tag}.{ext}" if dot and stem else f"{name}.{tag}"


def safe_file_name(name: str, sha256: str) -> str:
    """A worker's output name reduced to a plain file name (never a path out of the
    download folder); the hash when nothing usable is left."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = "".join(ch for ch in base if ch.isprintable())
    if base in ("", ".", "..") or base.startswith("."):
        return sha256[:16]
    return base
