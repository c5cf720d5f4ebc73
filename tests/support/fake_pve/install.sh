#!/bin/sh
# Turns a Debian test container into a fake Proxmox VE node (see README.md beside this file).
#
# Usage: install.sh --node NAME [--ip IP] [--version AC_VERSION] [--manager PVE_VERSION]
#                   [--cluster NAME --nodes NAME=IP,NAME=IP,...] [--quorate 0|1]
#                   [--lock-timeout SECONDS] [--email ADDRESS]
#
# /etc/pve may be a volume shared by every node of one cluster (as pmxcfs shares it): the shared
# files (CA, domains.cfg, user.cfg, corosync.conf) are created by the first node only, under a
# lock; what pmxcfs renders per node (.members, local) lives in /var/lib/fake-pve and is reached
# through symlinks, so `cat /etc/pve/.members` shows each node its own view.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
node='' ip='' version=8.2.2 manager='' cluster='' nodes='' quorate=1 lock_timeout=10
email=admin@example.invalid
while [ $# -gt 0 ]; do
  case $1 in
    --node) node=$2 ;;
    --ip) ip=$2 ;;
    --version) version=$2 ;;
    --manager) manager=$2 ;;
    --cluster) cluster=$2 ;;
    --nodes) nodes=$2 ;;
    --quorate) quorate=$2 ;;
    --lock-timeout) lock_timeout=$2 ;;
    --email) email=$2 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -n "$node" ] || { echo "install.sh: --node is required" >&2; exit 2; }
[ -n "$ip" ] || ip=$(hostname -i 2>/dev/null | cut -d' ' -f1)
if [ -n "$cluster" ] && [ -z "$nodes" ]; then nodes="$node=$ip"; fi

# pve-manager release, its git hash, kernel and proxmox-ve version that shipped (or could have
# shipped) this libpve-access-control. The hashes are made up; the versions follow the reference.
case $version in
  8.0.*) m=8.0.4 hash=d258a813cfa6b390 kernel=6.2.16-3-pve ve=8.0.1 ;;
  8.1.*) m=8.2.4 hash=faa83925c9641325 kernel=6.8.8-2-pve ve=8.2.0 ;;
  8.2.1) m=8.3.5 hash=dac3aa88bac3f300 kernel=6.8.12-8-pve ve=8.3.0 ;;
  8.2.*) m=8.4.1 hash=2a5fa54a8503f96d kernel=6.8.12-9-pve ve=8.4.0 ;;
  9.0.*) m=9.0.10 hash=deb1ca707ec72a89 kernel=6.14.11-2-pve ve=9.0.0 ;;
  9.1.*) m=9.2.0 hash=5c2b1ea6a14fc207 kernel=6.17.2-1-pve ve=9.2.0 ;;
  *) m='' hash=0123456789abcdef kernel=6.8.12-9-pve ve='' ;;
esac
[ -n "$manager" ] || manager=$m
[ -n "$manager" ] || { echo "install.sh: no pve-manager version known for $version: pass --manager" >&2; exit 2; }
[ -n "$ve" ] || ve=$manager

# --- the tools
install -d /usr/lib/fake-pve /var/lib/fake-pve
install -m 0644 "$here/fakepve.py" /usr/lib/fake-pve/fakepve.py
for tool in pveum pvesh pveversion; do install -m 0755 "$here/$tool" "/usr/bin/$tool"; done

# --- per-node state
cat > /var/lib/fake-pve/config.json <<EOF
{"access_control": "$version", "manager": "$manager", "manager_hash": "$hash", "kernel": "$kernel",
 "proxmox_ve": "$ve", "ip": "$ip", "lock_timeout": $lock_timeout}
EOF
# .members exactly as pmxcfs prints it (pve-cluster src/pmxcfs/status.c cfs_create_memberlist_msg).
members=/var/lib/fake-pve/members
if [ -n "$cluster" ]; then
  count=$(printf '%s\n' "$nodes" | tr ',' '\n' | grep -c .)
  {
    printf '{\n"nodename": "%s",\n"version": %d,\n' "$node" $((count + 2))
    printf '"cluster": { "name": "%s", "version": %d, "nodes": %d, "quorate": %d },\n' \
      "$cluster" "$count" "$count" "$quorate"
    printf '"nodelist": {\n'
    id=0
    for entry in $(printf '%s' "$nodes" | tr ',' ' '); do
      id=$((id + 1))
      [ $id -gt 1 ] && printf ',\n'
      printf '  "%s": { "id": %d, "online": 1, "ip": "%s"}' "${entry%%=*}" $id "${entry#*=}"
    done
    printf '\n  }\n}\n'
  } > "$members"
else
  printf '{\n"nodename": "%s",\n"version": 0\n}\n' "$node" > "$members"
fi
ln -sfn "/etc/pve/nodes/$node" /var/lib/fake-pve/local

# --- the (possibly shared) /etc/pve
install -d -m 0755 /etc/pve "/etc/pve/nodes/$node"
install -d -m 0700 /etc/pve/priv
install -d /etc/pve/priv/lock
exec 9> /etc/pve/priv/lock/.fake-install
flock -w 60 9
[ -L /etc/pve/.members ] || ln -sfn /var/lib/fake-pve/members /etc/pve/.members
[ -L /etc/pve/local ] || ln -sfn /var/lib/fake-pve/local /etc/pve/local
group=root
getent group www-data >/dev/null 2>&1 && group=www-data

if [ ! -s /etc/pve/pve-root-ca.pem ]; then
  if command -v openssl >/dev/null 2>&1; then
    # Like pvecm updatecerts: CN "Proxmox Virtual Environment", OU a random id per cluster.
    ou=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    openssl req -batch -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
      -subj "/CN=Proxmox Virtual Environment/OU=$ou/O=PVE Cluster Manager CA" \
      -keyout /etc/pve/priv/pve-root-ca.key -out /etc/pve/pve-root-ca.pem 2>/dev/null
  else
    # No openssl: a PEM-shaped block of random bytes, still unique per cluster (not a certificate).
    { echo '-----BEGIN CERTIFICATE-----'; head -c 600 /dev/urandom | base64; echo '-----END CERTIFICATE-----'; } \
      > /etc/pve/pve-root-ca.pem
  fi
  chmod 0640 /etc/pve/pve-root-ca.pem
fi

if [ ! -e /etc/pve/domains.cfg ]; then
  printf 'pam: pam\n\tcomment Linux PAM standard authentication\n\npve: pve\n\tcomment Proxmox VE authentication server\n\n' \
    > /etc/pve/domains.cfg
  chown "root:$group" /etc/pve/domains.cfg && chmod 0640 /etc/pve/domains.cfg
fi
if [ ! -e /etc/pve/user.cfg ]; then
  # What the installer writes (proxinstall: "user:root@pam:1:0:::${mailto}::\n"); no ACL line:
  # root@pam is Administrator implicitly and the writer never stores its ACL.
  printf 'user:root@pam:1:0:::%s::\n' "$email" > /etc/pve/user.cfg
  chown "root:$group" /etc/pve/user.cfg && chmod 0640 /etc/pve/user.cfg
fi
if [ -n "$cluster" ] && [ ! -e /etc/pve/corosync.conf ]; then
  {
    printf 'logging {\n  debug: off\n  to_syslog: yes\n}\n\nnodelist {\n'
    id=0
    for entry in $(printf '%s' "$nodes" | tr ',' ' '); do
      id=$((id + 1))
      printf '  node {\n    name: %s\n    nodeid: %d\n    quorum_votes: 1\n    ring0_addr: %s\n  }\n' \
        "${entry%%=*}" $id "${entry#*=}"
    done
    printf '}\n\nquorum {\n  provider: corosync_votequorum\n}\n\n'
    printf 'totem {\n  cluster_name: %s\n  config_version: %d\n  interface {\n    linknumber: 0\n  }\n' "$cluster" "$id"
    printf '  ip_version: ipv4-6\n  link_mode: passive\n  secauth: on\n  version: 2\n}\n'
  } > /etc/pve/corosync.conf
fi
exec 9>&-

# --- dpkg: `dpkg-query -W -f '${Version}' libpve-access-control` answers the pretended version
status=/var/lib/dpkg/status
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
awk 'BEGIN { RS = ""; ORS = "\n\n" } !/^Package: (libpve-access-control|pve-manager|proxmox-ve)\n/' \
  "$status" > "$status.fake-pve"
cat >> "$status.fake-pve" <<EOF
Package: libpve-access-control
Status: install ok installed
Priority: optional
Section: perl
Installed-Size: 512
Maintainer: Proxmox Support Team <support@proxmox.com>
Architecture: all
Version: $version
Description: Proxmox VE access control library
 This package contains the role based user management and access
 control function used by Proxmox VE.

Package: pve-manager
Status: install ok installed
Priority: optional
Section: admin
Installed-Size: 9000
Maintainer: Proxmox Support Team <support@proxmox.com>
Architecture: $arch
Version: $manager
Description: Proxmox Virtual Environment Management Tools
 This package contains the Proxmox Virtual Environment management tools.

Package: proxmox-ve
Status: install ok installed
Priority: optional
Section: admin
Installed-Size: 30
Maintainer: Proxmox Support Team <support@proxmox.com>
Architecture: all
Version: $ve
Description: Proxmox Virtual Environment
 Meta package for the Proxmox Virtual Environment.

EOF
mv "$status.fake-pve" "$status"
for package in libpve-access-control pve-manager proxmox-ve; do
  : > "/var/lib/dpkg/info/$package.list"
done
echo "fake PVE node $node (libpve-access-control $version, pve-manager $manager${cluster:+, cluster $cluster})"
