#!/usr/bin/env bash
# Sets up a Debian 12 machine for jaildaemon's tests, as root, so that none of them skips:
# the packages they use, the subordinate ids of the user-namespaced jails, and the container
# managers' daemons (Docker, LXD, Incus), started here by hand where no service manager runs
# them. `make check` runs it before `cargo test`; running it again changes nothing.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "dist/test-setup.sh must run as root" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
logs=/var/log/jaildaemon-tests
mkdir -p "$logs"

# Incus 6.0 is in bookworm-backports.
backports=/etc/apt/sources.list.d/jaildaemon-tests-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat > "$backports" <<'SOURCES'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
fi

# util-linux (unshare, nsenter, setpriv), procps (pkill), perl (a SIGHUP-ignoring wrapper),
# uidmap (newuidmap) for the namespace jails; dash, sysvinit-utils (pidof), coreutils and
# busybox-static for the images of tests/triggers.rs and the offline container images;
# lxc with its templates, podman with runc (crun refuses hybrid cgroups), docker.io, lxd and
# incus-base (containers only) for tests/containers.rs; mandoc, man-db, bmake, systemd
# (systemd-analyze verify) and make for tests/packaging.rs; webhook and inotify-tools for the
# benchmark's comparison rows; python3-prometheus-client parses the metrics file in
# tests/commands.rs; strace shows which commands run without a shell in tests/invocation.rs;
# gdb is the host user's debugger in tests/hostile.rs; debhelper (with dpkg-dev) and lintian
# build and check the Debian package that tests/packaging.rs installs and purges;
# containerd (ctr, and the system containerd of tests/fleets.rs) and python3-yaml (the
# Kubernetes example's YAML) for tests/fleets.rs; python3-fusepy (with libfuse2) and fuse3
# serve the FUSE jail roots of tests/userdb.rs.
packages=(util-linux procps perl-base uidmap dash sysvinit-utils coreutils busybox-static
    lxc lxc-templates podman runc docker.io containerd lxd mandoc man-db bmake systemd make
    webhook inotify-tools python3-prometheus-client strace gdb debhelper lintian python3-yaml
    python3-fusepy fuse3)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
incus_missing=
dpkg-query -W -f '${Status}' incus-base 2>/dev/null | grep -q 'ok installed' || incus_missing=1
if [ "${#missing[@]}" -gt 0 ] || [ -n "$incus_missing" ]; then
    apt-get update -q
    [ "${#missing[@]}" -eq 0 ] || apt-get install -y -q "${missing[@]}"
    [ -z "$incus_missing" ] || apt-get install -y -q -t bookworm-backports incus-base
fi

# The user-namespaced test jails map their root to host uid and gid 100000: root must own
# 100000 to 165535, in one range, which root-subids.sh adds only where none covers them, and
# never beside a range that overlaps them (it stops with an error then).
subids_changed=$(bash "$(dirname "$0")/root-subids.sh" /etc/subuid /etc/subgid)
[ -z "$subids_changed" ] || echo "$subids_changed"

# wait_for SECONDS COMMAND...: true once COMMAND succeeds.
wait_for() {
    local end=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.5
    done
}

# /run survives a restart on some machines (it is not always a tmpfs): a containerd socket
# left by a containerd that is gone makes dockerd dial it and give up instead of starting
# its own, so a socket nothing answers on is removed before either daemon starts.
containerd_sock=/run/containerd/containerd.sock
if [ -S "$containerd_sock" ] \
    && ! timeout 10 ctr --address "$containerd_sock" version >/dev/null 2>&1; then
    rm -f "$containerd_sock" "$containerd_sock.ttrpc"
fi

# Docker, on its default socket (the daemon asks `docker` with a clean environment), without
# touching the host's firewall or network: the test containers have no network.
if ! docker info >/dev/null 2>&1; then
    # dockerd refuses to start while its pidfile names a live process: after a restart that
    # number may belong to anything else.
    pid=$(cat /run/docker.pid 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]; then
        rm -f /run/docker.pid
    fi
    setsid dockerd --iptables=false --ip6tables=false --bridge=none \
        > "$logs/dockerd.log" 2>&1 < /dev/null &
    wait_for 60 docker info || { tail -20 "$logs/dockerd.log" >&2; exit 1; }
fi

# The system containerd on its default socket, as a Kubernetes node runs it (tests/fleets.rs
# makes pod containers there with ctr); not the one dockerd starts for itself, which listens
# elsewhere and is left as it is.
if ! ctr --address "$containerd_sock" version >/dev/null 2>&1; then
    setsid containerd > "$logs/containerd.log" 2>&1 < /dev/null &
    wait_for 60 ctr --address "$containerd_sock" version \
        || { tail -20 "$logs/containerd.log" >&2; exit 1; }
fi

# LXD 5.0: its daemon, and a storage pool of plain directories; no network.
preseed='config: {}
storage_pools:
- name: default
  driver: dir
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk'
if ! lxc info >/dev/null 2>&1; then
    setsid lxd --group lxd --logfile "$logs/lxd.log" > /dev/null 2>&1 < /dev/null &
    wait_for 60 lxc info || { tail -20 "$logs/lxd.log" >&2; exit 1; }
fi
lxc storage show default >/dev/null 2>&1 || lxd init --preseed <<< "$preseed"

# Incus 6.0, the same way. It reads root's ranges when it starts: a running one must start
# again to stop mapping a range that root-subids.sh removed.
if [ -n "$subids_changed" ] && incus info >/dev/null 2>&1; then
    incus admin shutdown --timeout 120
    wait_for 30 sh -c '! pgrep -x incusd' || { echo "incusd did not stop" >&2; exit 1; }
fi
if ! incus info >/dev/null 2>&1; then
    mkdir -p /var/log/incus
    PATH=/usr/libexec/incus:$PATH setsid /usr/libexec/incus/incusd --group incus-admin \
        --logfile "$logs/incus.log" > /dev/null 2>&1 < /dev/null &
    wait_for 60 incus info || { tail -20 "$logs/incus.log" >&2; exit 1; }
fi
incus storage show default >/dev/null 2>&1 || incus admin init --preseed <<< "$preseed"
echo "test setup done: docker, containerd, lxd and incus answer"
