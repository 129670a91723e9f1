#!/usr/bin/env bash
# Debian programs the project's tests and benchmarks use; installs only what is missing.
set -euo pipefail
want=()
command -v make >/dev/null || want+=(make)
command -v rsync >/dev/null || want+=(rsync)
if [ "${PHOTONIC_TESTS:-0}" = 1 ]; then
  # The Lightroom plugin's own Lua runs under lua5.1 in the tests, its HTTP on lua-socket.
  command -v lua5.1 >/dev/null || want+=(lua5.1)
  lua5.1 -e 'require("socket.http")' >/dev/null 2>&1 || want+=(lua-socket)
  # A real Prometheus scrapes the daemons in tests/e2e/test_prometheus_e2e.py.
  command -v prometheus >/dev/null || want+=(prometheus)
  # The dashboard's browser tests (tests/browser/) drive Debian's headless Chromium through
  # Playwright (never Playwright's own browser download).
  command -v chromium >/dev/null || want+=(chromium)
  # The PostgreSQL job queue's tests start a throwaway cluster (tests/support/postgres.py) with
  # initdb/pg_ctl, which Debian keeps under /usr/lib/postgresql/<version>/bin, off PATH.
  command -v initdb >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
    || want+=(postgresql)
  # The read-only WebDAV export is browsed by a real WebDAV client in the tests.
  command -v rclone >/dev/null || want+=(rclone)
fi
if [ "${PHOTONIC_BENCH:-0}" = 1 ]; then
  command -v syncthing >/dev/null || want+=(syncthing)
  [ -x /usr/bin/time ] || want+=(time)  # GNU time: peak memory of each measured command
  command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || want+=(openssh-server openssh-client)
fi
if [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing programs: ${want[*]}; install them with apt-get (needs root)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null
fi
