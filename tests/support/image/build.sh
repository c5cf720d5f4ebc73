#!/bin/bash
# Builds a test host image from this machine's Debian apt sources (no registry needed).
# Usage: build.sh [host|systemd]   (default host; building `host` also builds `systemd`, so that one call
# from scripts/test or CI prepares every image the tests use). Prints the requested image's tag on stdout.
#   host:    sshd as PID 1 (Dockerfile, sshd_config, entrypoint.sh)
#   systemd: systemd as PID 1 with sshd as a unit (systemd/Dockerfile and its units), for service modules
# Two cached layers per variant, each tagged by a hash of its own recipe:
#   orch-test-base:<hash>  mmdebstrap of Debian bookworm with the packages below (slow: minutes)
#   orch-test-host:<hash> / orch-test-systemd:<hash>  the sshd setup on top (fast: seconds)
# so editing the sshd setup does not re-run mmdebstrap.
# Concurrent callers (parallel test processes) serialize on a lock; the fast path takes no lock.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
variant=${1:-host}
suite=bookworm
packages=openssh-server,sudo,python3,ca-certificates,curl,wget,procps,iproute2,gnupg,passwd
case "$variant" in
  host)
    context=$here
    files=("$here/Dockerfile" "$here/sshd_config" "$here/entrypoint.sh") ;;
  systemd)
    packages=$packages,systemd,systemd-sysv,dbus
    context=$here/systemd
    files=("$here/sshd_config" "$context"/*) ;;
  *) echo "build.sh: unknown variant '$variant' (host or systemd)" >&2; exit 2 ;;
esac
base_hash=$(printf 'mmdebstrap --variant=apt %s %s\n' "$suite" "$packages" | sha256sum | cut -c1-12)
image_hash=$( (echo "$base_hash"; cat "${files[@]}") | sha256sum | cut -c1-12)
base="orch-test-base:$base_hash"
image="orch-test-$variant:$image_hash"

finish() {
  if [ "$variant" = host ]; then "$0" systemd >/dev/null; fi
  echo "$image"
  exit 0
}

if docker image inspect "$image" >/dev/null 2>&1; then finish; fi

exec 9>"${TMPDIR:-/tmp}/orch-test-image.lock"
flock -w 1800 9 || { echo "build.sh: timed out waiting for another image build" >&2; exit 1; }
# Another process may have finished the build while this one waited for the lock.
if docker image inspect "$image" >/dev/null 2>&1; then exec 9>&-; finish; fi

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if ! command -v mmdebstrap >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap) >&2
  fi
  echo "build.sh: building $base with mmdebstrap (takes a few minutes once)" >&2
  mmdebstrap --quiet --variant=apt --include="$packages" "$suite" - | docker import - "$base" >&2
fi
if [ "$variant" = systemd ]; then
  # The systemd variant shares sshd_config with the plain host image: build from a copy with both.
  build_dir=$(mktemp -d)
  trap 'rm -rf "$build_dir"' EXIT
  cp "$context"/* "$here/sshd_config" "$build_dir/"
  context=$build_dir
fi
docker build -q --build-arg BASE="$base" -t "$image" "$context" >&2
docker tag "$image" "orch-test-$variant:latest"
exec 9>&-
finish
