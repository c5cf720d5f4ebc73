#!/bin/bash
# Builds the test host image from this machine's Debian apt sources (no registry needed).
# Cached by a hash of this folder: rebuilt only when the recipe changes. Prints the image tag.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
packages=openssh-server,sudo,python3,ca-certificates,curl,procps,iproute2,gnupg,passwd
recipe_hash=$( (cat "$here/build.sh" "$here/Dockerfile" "$here/sshd_config" "$here/entrypoint.sh"; echo "$packages") | sha256sum | cut -c1-12)
base="orch-test-base:$recipe_hash"
host="orch-test-host:$recipe_hash"
if docker image inspect "$host" >/dev/null 2>&1; then echo "$host"; exit 0; fi
if ! docker image inspect "$base" >/dev/null 2>&1; then
  if ! command -v mmdebstrap >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap) >&2
  fi
  mmdebstrap --quiet --variant=apt --include="$packages" bookworm - | docker import - "$base" >&2
fi
docker build -q --build-arg BASE="$base" -t "$host" "$here" >&2
docker tag "$host" orch-test-host:latest
echo "$host"
