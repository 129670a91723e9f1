#!/usr/bin/env bash
# `make run`: development certificates, sample photos, then a server and an agent on loopback
# with the repo's server.yaml and agent.yaml. Ctrl-C stops both cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
mkdir -p var
if [ ! -f certs/ca.crt ]; then
  "$bin/photonic" certs init --dir certs
fi
for id in laptop admin; do
  [ -f "certs/$id.crt" ] || "$bin/photonic" certs issue "$id" --dir certs
done
if [ ! -d var/sample-photos ] || [ -z "$(ls -A var/sample-photos 2>/dev/null)" ]; then
  "$bin/python" scripts/make-sample-photos.py var/sample-photos
fi
"$bin/photonic" server --config server.yaml 2> >(tee var/server.log >&2) &
server=$!
trap 'kill -TERM $server $agent 2>/dev/null; wait $server $agent 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do grep -q event=server_started var/server.log 2>/dev/null && break; sleep 0.1; done
"$bin/photonic" agent --config agent.yaml 2> >(tee var/agent.log >&2) &
agent=$!
cat <<MSG

photonic is running: server on 127.0.0.1:50051 (health and metrics: http://127.0.0.1:8080/healthz,
/metrics), agent 'laptop' watching var/sample-photos.
Drop photos into var/sample-photos; they appear in var/server/library/laptop/sample/.
Progress: .venv/bin/photonic status --config agent.yaml --watch      Stop: Ctrl-C

MSG
wait $agent
