"""`python -m bench.moto_endpoint --port N`: moto's ThreadedMotoServer (the tests' S3 stand-in,
tests/support/s3.py) in a process of its own, so the scale-out figures can read the S3
endpoint's CPU apart from the harness's and photonic's. It serves until stdin closes (the
bench holds the pipe) or SIGTERM.

moto is an in-process Python implementation of the S3 API that keeps objects in memory: it
is a slow local endpoint, not AWS, MinIO or Ceph; the figures say so."""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.moto_endpoint")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def until_stdin_closes() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    print("ready", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
