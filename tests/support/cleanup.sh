#!/bin/bash
# Removes leftover test containers, networks and volumes: those whose owning process (label <label>.pid) is gone,
# or that are older than an hour (label <label>.created, unix seconds). A test process that was killed
# (timeout, Ctrl-C) cannot run its own cleanup; this sweep catches what it left.
# Usage: cleanup.sh [LABEL]   (default orch-test; the benchmark uses orch-bench)
set -uo pipefail
label=${1:-orch-test}
max_age=${ORCH_TEST_MAX_AGE_SECS:-3600}
now=$(date +%s)

is_stale() { # pid created
  local pid=$1 created=$2
  [[ -z "$pid" || ! -d "/proc/$pid" ]] && return 0
  [[ "$created" =~ ^[0-9]+$ ]] && (( now - created > max_age )) && return 0
  return 1
}

docker ps -a --filter "label=$label" --format "{{.ID}} {{.Label \"$label.pid\"}} {{.Label \"$label.created\"}}" |
while read -r id pid created; do
  if is_stale "$pid" "$created"; then docker rm -f "$id" >/dev/null 2>&1 && echo "removed stale container $id" >&2; fi
done
docker network ls --filter "label=$label" --format "{{.Name}} {{.Label \"$label.pid\"}} {{.Label \"$label.created\"}}" |
while read -r name pid created; do
  if is_stale "$pid" "$created"; then docker network rm "$name" >/dev/null 2>&1 && echo "removed stale network $name" >&2; fi
done
docker volume ls --filter "label=$label" --format "{{.Name}} {{.Label \"$label.pid\"}} {{.Label \"$label.created\"}}" |
while read -r name pid created; do
  if is_stale "$pid" "$created"; then docker volume rm "$name" >/dev/null 2>&1 && echo "removed stale volume $name" >&2; fi
done
exit 0
