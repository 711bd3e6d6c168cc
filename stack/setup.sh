#!/usr/bin/env bash
# Bring up what the harness runs against: a Docker engine, QEMU user-mode handlers in
# binfmt_misc, and a registry on 127.0.0.1:5000. Idempotent: whatever already answers is
# used as it is, and only what is missing is installed (Debian packages) or started.
#
#   stack/setup.sh            everything
#   stack/setup.sh --check    report what is up, change nothing (exit 1 if anything is down)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${MULTIARCH_STATE_DIR:-/var/lib/multiarch-harness}
registry_addr=127.0.0.1:5000
auth_registry_addr=127.0.0.1:5001
podman_sock=${MULTIARCH_PODMAN_SOCK:-/run/multiarch-podman.sock}

. "$here/lib.sh"

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
registry_up() { curl -fs -o /dev/null "http://$registry_addr/v2/"; }
podman_up() { DOCKER_HOST="unix://$podman_sock" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
# The login registry answers 401 to an anonymous /v2/: that it answers at all is enough.
auth_registry_up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$auth_registry_addr/v2/")" = 401 ]; }
binfmt_up() { [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64; }

if [ "${1:-}" = --check ]; then
  ok=0
  engine_up && log "engine: up" || { log "engine: down"; ok=1; }
  binfmt_up && log "qemu binfmt handlers: enabled" || { log "qemu binfmt handlers: missing"; ok=1; }
  registry_up && log "registry $registry_addr: up" || { log "registry $registry_addr: down"; ok=1; }
  auth_registry_up && log "login registry $auth_registry_addr: up" || { log "login registry $auth_registry_addr: down"; ok=1; }
  podman_up && log "second engine (podman) unix://$podman_sock: up" || { log "second engine (podman): down"; ok=1; }
  exit $ok
fi

wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do "$@" && return 0; sleep 0.2; done
  die "$what did not come up within ${secs}s"
}

# --- engine ---------------------------------------------------------------------------
if engine_up; then
  log "engine: already answering at ${DOCKER_HOST:-unix:///var/run/docker.sock}; using it"
else
  [ -z "${DOCKER_HOST:-}" ] || die "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"
  # pigz: docker.io recommends it, and dockerd decompresses layers with unpigz when it is
  # there (a pull or load of a 40 MB layer takes 15-20% less time here).
  apt_install docker.io pigz curl
  mkdir -p "$state"
  if ! pgrep -x dockerd >/dev/null; then
    # A dockerd that was killed (a machine reused after a stop) leaves its pid file, and a
    # new one refuses to start while it is there.
    sudo_ rm -f /var/run/docker.pid
    log "starting dockerd (log: $state/dockerd.log)"
    # Daemons start in / : a working directory that is later deleted (a clone removed, a
    # test's temporary folder) breaks what they start, e.g. conmon under podman.
    sudo_ sh -c "cd / && nohup dockerd >'$state/dockerd.log' 2>&1 &"
  fi
  wait_for "dockerd (see $state/dockerd.log)" 60 engine_up
  log "engine: up"
fi

# --- QEMU user-mode emulation -----------------------------------------------------------
engine_is_local() { case "${DOCKER_HOST:-unix:///var/run/docker.sock}" in unix://*) return 0;; *) return 1;; esac; }
if binfmt_up; then
  log "qemu binfmt handlers: already enabled"
elif engine_is_local; then
  apt_install qemu-user-static binfmt-support
  [ -e /proc/sys/fs/binfmt_misc/register ] || sudo_ mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  sudo_ update-binfmts --enable >/dev/null 2>&1 || true
  binfmt_up || die "qemu handlers are not registered in /proc/sys/fs/binfmt_misc (try: update-binfmts --enable)"
  log "qemu binfmt handlers: enabled"
else
  log "engine is remote: emulation is whatever that engine's host provides"
fi

# --- registry -------------------------------------------------------------------------
if registry_up; then
  log "registry $registry_addr: already answering"
else
  apt_install docker-registry curl
  mkdir -p "$state/registry"
  log "starting registry on $registry_addr (log: $state/registry.log)"
  sudo_ sh -c "cd / && nohup docker-registry serve '$here/registry.yml' >'$state/registry.log' 2>&1 &"
  wait_for "registry (see $state/registry.log)" 30 registry_up
  log "registry $registry_addr: up"
fi

# A second registry that asks for a login, for tests of authenticated pulls.
if auth_registry_up; then
  log "login registry $auth_registry_addr: already answering"
else
  apt_install docker-registry curl
  mkdir -p "$state/registry-auth"
  sed "s#HTPASSWD_PATH#$here/htpasswd#" "$here/registry-auth.yml" >"$state/registry-auth.yml"
  log "starting login registry on $auth_registry_addr (log: $state/registry-auth.log)"
  sudo_ sh -c "cd / && nohup docker-registry serve '$state/registry-auth.yml' >'$state/registry-auth.log' 2>&1 &"
  wait_for "login registry (see $state/registry-auth.log)" 30 auth_registry_up
  log "login registry $auth_registry_addr: up"
fi

# A second engine, Debian's podman behind its Docker-compatible API, for routing platforms
# to another engine (--engine PLATFORM=DOCKER_HOST). Skipped with --no-podman.
if [ "${1:-}" != --no-podman ]; then
  if podman_up; then
    log "second engine (podman) at unix://$podman_sock: already answering"
  elif ! command -v apt-get >/dev/null; then
    log "no apt here: not starting the second engine (podman); the routing tests will say so"
  else
    apt_install podman
    sudo_ mkdir -p /etc/containers/containers.conf.d /etc/containers/registries.conf.d
    sudo_ cp "$here/podman/containers.conf" /etc/containers/containers.conf.d/multiarch.conf
    sudo_ cp "$here/podman/registries.conf" /etc/containers/registries.conf.d/multiarch.conf
    log "starting podman's API on unix://$podman_sock (log: $state/podman.log)"
    sudo_ sh -c "cd / && nohup podman system service --time=0 'unix://$podman_sock' >'$state/podman.log' 2>&1 &"
    wait_for "podman (see $state/podman.log)" 30 podman_up
    log "second engine (podman) at unix://$podman_sock: up"
  fi
fi
