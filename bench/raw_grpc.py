"""The raw ceiling: a bare gRPC client-streaming upload (mTLS, SHA-256 both sides, fsync per file).

Run as `python -m bench.raw_grpc serve|upload ...`; the benchmark starts both as subprocesses so
their CPU and memory are measured like any other tool's. There is no .proto: generic handlers
move bytes. Each request message is one frame: b"H" + relative path (first), b"D" + data, and
b"T" + the client's hex SHA-256 (last). The server verifies the digest, fsyncs, renames, and
only then answers with its own digest.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import grpc

from bench import trash
from bench.peers.base import SyncRun, free_port, port_open
from bench.procstat import ProcUsage, read_usage, run_measured, wait_until
from photonic import pki, tls
from photonic.grpc_options import CHANNEL_OPTIONS, SERVER_OPTIONS
from photonic.memtune import keep_freed_buffers

_METHOD = "/bench.RawUpload/Upload"
CHUNK_BYTES = 4 << 20
"""photonic's default chunk size, so both move the same message sizes."""
DEFAULT_CONCURRENCY = 4
_AGENT = "raw-client"


def _identity(data: bytes) -> bytes:
    return data


class _Receiver:
    """Receives one file per call into a partial file, then verifies, fsyncs and renames it."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._partial = root / ".partial"
        self._partial.mkdir(parents=True, exist_ok=True)

    async def upload(self, frames: AsyncIterator[bytes], _context: object) -> bytes:
        header = await anext(frames)
        relative = header[1:].decode()
        fd, tmp_name = tempfile.mkstemp(dir=self._partial)
        digest = hashlib.sha256()
        claimed = ""
        try:
            async for frame in frames:
                if frame[:1] == b"D":
                    await asyncio.to_thread(_hash_and_write, fd, digest, frame[1:])
                else:
                    claimed = frame[1:].decode()
            if claimed != digest.hexdigest():
                raise ValueError(f"{relative}: SHA-256 mismatch")
            await asyncio.to_thread(_commit, fd, tmp_name, self._root / relative)
        finally:
            os.close(fd)
        return digest.hexdigest().encode()


def _hash_and_write(fd: int, digest: hashlib._Hash, data: bytes) -> None:
    digest.update(data)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _commit(fd: int, tmp_name: str, target: Path) -> None:
    os.fsync(fd)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp_name, target)
    # The rename is durable only once its directory is fsynced.
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def serve(port: int, root: Path, certs: Path) -> None:
    """Serves uploads on 127.0.0.1:port until killed."""
    receiver = _Receiver(root)
    handler = grpc.method_handlers_generic_handler(
        "bench.RawUpload",
        {
            "Upload": grpc.stream_unary_rpc_method_handler(
                receiver.upload, request_deserializer=_identity, response_serializer=_identity
            )
        },
    )
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    creds = tls.server_credentials(certs / "server.crt", certs / "server.key", certs / "ca.crt")
    server.add_secure_port(f"127.0.0.1:{port}", creds)
    await server.start()
    await server.wait_for_termination()


async def _frames(path: Path, relative: str) -> AsyncIterator[bytes]:
    yield b"H" + relative.encode()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while True:
            data = await asyncio.to_thread(_read_and_hash, handle, digest)
            if not data:
                break
            yield b"D" + data
    yield b"T" + digest.hexdigest().encode()


def _read_and_hash(handle: object, digest: hashlib._Hash) -> bytes:
    data: bytes = handle.read(CHUNK_BYTES)  # type: ignore[attr-defined]
    digest.update(data)
    return data


async def upload_all(port: int, root: Path, certs: Path, concurrency: int) -> int:
    """Uploads every file under root, `concurrency` calls at once; returns the files sent."""
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json")
    creds = tls.channel_credentials(
        certs / f"{_AGENT}.crt", certs / f"{_AGENT}.key", certs / "ca.crt"
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=CHANNEL_OPTIONS) as ch:
        call = ch.stream_unary(
            _METHOD, request_serializer=_identity, response_deserializer=_identity
        )
        pending = iter(paths)

        async def worker() -> None:
            for path in pending:
                relative = path.relative_to(root).as_posix()
                await call(_frames(path, relative), timeout=600)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(paths)


class RawGrpcCeiling:
    """Runs the server and a client as subprocesses and times the client's whole upload."""

    name = "raw-grpc"

    def __init__(self, work_dir: Path, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="raw-grpc-", dir=work_dir))
        self._certs = self._tmp / "certs"
        pki.init_pki(self._certs)
        pki.issue_agent_cert(self._certs, _AGENT)
        self._concurrency = concurrency

    def first_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        """The server up before the clock, the client process timed from launch to exit."""
        return self._upload(source, files, payload_bytes, server_in_clock=False)

    def cold_sync(self, source: Path, files: int, payload_bytes: int) -> SyncRun:
        """Server and client both launched inside the clock."""
        return self._upload(source, files, payload_bytes, server_in_clock=True)

    def warm_sync(self, incoming: Path, files: int, payload_bytes: int, warmup: Path) -> SyncRun:
        """The server up; incoming renamed into the client's folder, then the client launched
        at once (a client process per upload: there is no daemon to keep connected)."""
        del warmup  # each upload is a fresh process and connection; nothing to warm
        folder = self._tmp / "source"
        folder.mkdir()
        return self._upload(folder, files, payload_bytes, server_in_clock=False,
                            before_client=lambda: os.rename(incoming, folder / incoming.name))

    def _upload(
        self,
        source: Path,
        files: int,
        payload_bytes: int,
        *,
        server_in_clock: bool,
        before_client: Callable[[], None] | None = None,
    ) -> SyncRun:
        port = free_port()
        dest = Path(tempfile.mkdtemp(prefix="dest-", dir=self._tmp))
        started = time.perf_counter()
        server = subprocess.Popen(_self_argv("serve", port, dest, self._certs))
        try:
            wait_until(lambda: port_open(port), timeout_s=30, what="raw gRPC server to listen")
            launch_s = time.perf_counter() - started
            before = read_usage(server.pid) if not server_in_clock else ProcUsage(0.0, 0)
            if before_client is not None:
                before_client()
            argv = [*_self_argv("upload", port, source, self._certs), str(self._concurrency)]
            result = run_measured(argv, timeout_s=3600)
            if result.returncode != 0:
                raise RuntimeError(f"raw gRPC upload failed: {result.stderr[-2000:]}")
            receiver = read_usage(server.pid).minus(before)
        finally:
            server.kill()
            server.wait(timeout=30)
        seconds = result.wall_s + (launch_s if server_in_clock else 0.0)
        return SyncRun(seconds, files, payload_bytes, None, result.usage, receiver)

    def close(self) -> None:
        trash.discard(self._tmp)


def _self_argv(command: str, port: int, directory: Path, certs: Path) -> list[str]:
    return [sys.executable, "-m", "bench.raw_grpc", command, str(port), str(directory), str(certs)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_grpc")
    parser.add_argument("command", choices=("serve", "upload"))
    parser.add_argument("port", type=int)
    parser.add_argument("directory", type=Path)
    parser.add_argument("certs", type=Path)
    parser.add_argument("concurrency", type=int, nargs="?", default=DEFAULT_CONCURRENCY)
    args = parser.parse_args(argv)
    keep_freed_buffers()  # the same allocator settings as photonic's daemons: a fair ceiling
    if args.command == "serve":
        asyncio.run(serve(args.port, args.directory, args.certs))
        return 0
    started = time.perf_counter()
    files = asyncio.run(upload_all(args.port, args.directory, args.certs, args.concurrency))
    print(json.dumps({"files": files, "seconds": time.perf_counter() - started}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
