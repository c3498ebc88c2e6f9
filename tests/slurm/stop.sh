#!/usr/bin/env bash
# Stops the daemons tests/slurm/start.sh started (by the pids it recorded), newest first.
set -uo pipefail
state=${RUNNER_SLURM_STATE:-/run/runner-slurm}
[ -f "$state/pids" ] || exit 0
tac "$state/pids" | while read -r name pid; do
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        echo "slurm: stopped $name ($pid)"
    fi
done
rm -f "$state/pids"
