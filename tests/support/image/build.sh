#!/bin/bash
# Builds the test host image from this machine's Debian apt sources (no registry needed).
# Two cached layers, each tagged by a hash of its own recipe:
#   orch-test-base:<hash>  mmdebstrap of Debian bookworm with the packages below (slow: minutes)
#   orch-test-host:<hash>  sshd setup from Dockerfile/sshd_config/entrypoint.sh (fast: seconds)
# so editing the sshd setup does not re-run mmdebstrap. Prints the host image tag on stdout.
# Concurrent callers (parallel test processes) serialize on a lock; the fast path takes no lock.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
packages=openssh-server,sudo,python3,ca-certificates,curl,procps,iproute2,gnupg,passwd
base_hash=$(printf 'mmdebstrap --variant=apt %s %s\n' "$suite" "$packages" | sha256sum | cut -c1-12)
host_hash=$( (echo "$base_hash"; cat "$here/Dockerfile" "$here/sshd_config" "$here/entrypoint.sh") | sha256sum | cut -c1-12)
base="orch-test-base:$base_hash"
host="orch-test-host:$host_hash"

if docker image inspect "$host" >/dev/null 2>&1; then echo "$host"; exit 0; fi

exec 9>"${TMPDIR:-/tmp}/orch-test-image.lock"
flock -w 1800 9 || { echo "build.sh: timed out waiting for another image build" >&2; exit 1; }
# Another process may have finished the build while this one waited for the lock.
if docker image inspect "$host" >/dev/null 2>&1; then echo "$host"; exit 0; fi

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if ! command -v mmdebstrap >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap) >&2
  fi
  echo "build.sh: building $base with mmdebstrap (takes a few minutes once)" >&2
  mmdebstrap --quiet --variant=apt --include="$packages" "$suite" - | docker import - "$base" >&2
fi
docker build -q --build-arg BASE="$base" -t "$host" "$here" >&2
docker tag "$host" orch-test-host:latest
echo "$host"
