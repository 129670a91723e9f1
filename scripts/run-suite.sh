#!/usr/bin/env bash
# One test run in two passes over the given paths: every test not marked `serial` in
# TEST_WORKERS processes at once (pytest-xdist: most tests wait on daemons and sockets, not on
# the CPU), then the tests marked `serial` one after another, alone. Both passes always run;
# the exit status is the first failure's. Extra pytest options: PYTEST_ARGS.
# Usage: run-suite.sh PYTEST WORKERS PATH...
set -uo pipefail
pytest=$1
workers=$2
shift 2
read -r -a extra <<< "${PYTEST_ARGS:-}"
status=0
"$pytest" -q -n "$workers" --dist worksteal -m "not serial" "${extra[@]}" "$@" || status=$?
serial=()  # the serial pass keeps the parallel pass's temporary files: its own --basetemp
for arg in "${extra[@]}"; do
    case $arg in --basetemp=*) serial+=("$arg-serial") ;; *) serial+=("$arg") ;; esac
done
"$pytest" -q -m serial "${serial[@]}" "$@"
rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ] && [ "$status" -eq 0 ]; then  # 5: none marked serial here
    status=$rc
fi
exit "$status"
