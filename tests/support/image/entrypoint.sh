#!/bin/sh
# Per-container setup: a fresh ed25519 host key (kept across docker stop/start, so known_hosts stays valid),
# the test's public key for root and deploy, then sshd in the foreground as PID 1.
set -e
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
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
