#!/usr/bin/env bash
# Fails when photonic/v1 (committed, generated) is not what protos/ generate today.
set -euo pipefail
python=${1:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PATH="$(dirname "$python"):$PATH" "$python" -m grpc_tools.protoc -Iprotos --python_out="$tmp" --grpc_python_out="$tmp" \
  --mypy_out="$tmp" protos/photonic/v1/*.proto
for f in "$tmp"/photonic/v1/*; do
  name=$(basename "$f")
  if ! cmp -s "$f" "photonic/v1/$name"; then
    echo "photonic/v1/$name is stale: run 'make proto' and commit the result" >&2
    exit 1
  fi
done
echo "generated protobuf code is fresh"
