#!/bin/sh
# Per-container setup: fresh host keys, the test's public key for root and deploy, then sshd in the foreground.
set -e
ssh-keygen -A >/dev/null
if [ -n "$ORCH_TEST_PUBKEY" ]; then
  for home in /root /home/deploy; do
    mkdir -p "$home/.ssh"
    printf '%s\n' "$ORCH_TEST_PUBKEY" > "$home/.ssh/authorized_keys"
    chmod 700 "$home/.ssh"; chmod 600 "$home/.ssh/authorized_keys"
  done
  chown -R deploy:deploy /home/deploy/.ssh
fi
# sshd logs to a file so tests can count authentications independently of orch.
exec /usr/sbin/sshd -D -E /var/log/sshd.log
