#!/usr/bin/env bash
# `make run`: development certificates, sample photos, then a server and an agent on loopback
# with the repo's server.yaml and agent.yaml, and admin-agent.yaml for the admin commands.
# Ctrl-C (or SIGTERM) stops both daemons, waits for them and exits 0 with a clean-stop line.
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
if [ ! -f admin-agent.yaml ]; then
  # The README's `--config admin-agent.yaml` (conflicts, jobs): the admin certificate that
  # server.yaml gives the admin scope, against the server agent.yaml uses.
  endpoint=$("$bin/python" -c 'import pathlib, photonic.config as c
print(c.load_agent_config(pathlib.Path("agent.yaml")).server_endpoints[0])')
  mkdir -p var/admin-photos
  cat > admin-agent.yaml <<YAML
# Written by \`make run\` (delete it to have it written again): the admin agent, for
# \`photonic conflicts ... --config admin-agent.yaml\` and \`photonic jobs ...\`.
agent:
  id: admin
  server_endpoints:
    - $endpoint
  buffer_path: ./var/admin-buffer
  watch:
    - path: ./var/admin-photos
      name: admin
security:
  cert_path: certs/admin.crt
  key_path: certs/admin.key
  ca_path: certs/ca.crt
YAML
fi

pids=()
stop() {
  trap '' INT TERM  # a second Ctrl-C must not cut the daemons' graceful stop short
  echo >&2
  echo "stopping photonic: server and agent are finishing what they hold..." >&2
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local failed=""
  local code
  for pid in "${pids[@]}"; do
    code=0
    wait "$pid" 2>/dev/null || code=$?
    # 143: the TERM came before the daemon had set up its handler (Ctrl-C right at start).
    [ "$code" -eq 0 ] || [ "$code" -eq 143 ] || failed=1
  done
  pids=()
  if [ -n "$failed" ]; then
    echo "photonic stopped; a daemon did not exit cleanly (see var/server.log, var/agent.log)"
    exit 1
  fi
  echo "photonic stopped cleanly."
  exit 0
}
# Whatever ends this script (an error under set -e included) leaves no daemon behind.
trap '[ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true' EXIT
trap stop INT TERM
# tee ignores Ctrl-C (sent to the whole terminal group) so the daemons' stop is still logged.
"$bin/photonic" server --config server.yaml 2> >(trap '' INT; tee var/server.log >&2) &
pids+=($!)
for _ in $(seq 100); do grep -q event=server_started var/server.log 2>/dev/null && break; sleep 0.1; done
"$bin/photonic" agent --config agent.yaml 2> >(trap '' INT; tee var/agent.log >&2) &
pids+=($!)
cat <<MSG

photonic is running: server on 127.0.0.1:50051 (health and metrics: http://127.0.0.1:8080/healthz,
/metrics), agent 'laptop' watching var/sample-photos.
Drop photos into var/sample-photos; they appear in var/server/library/laptop/sample/.
Progress: .venv/bin/photonic status --config agent.yaml --watch      Stop: Ctrl-C
Admin commands (conflicts, jobs): --config admin-agent.yaml

MSG
# Either daemon ending on its own ends the demo, with its exit code.
status=0
wait -n "${pids[@]}" || status=$?
echo "a photonic daemon ended on its own (exit $status); stopping the other" >&2
kill -TERM "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
pids=()
exit "$status"
