# Shell helpers shared by the stack and sample-image scripts. Sourced, not run.
# shellcheck shell=bash

log() { printf '%s: %s\n' "${LOG_TAG:-stack}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${LOG_TAG:-stack}" "$*" >&2; exit 1; }

sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and this is not a Debian machine: install them by hand"
  if [ -z "$apt_updated" ]; then
    # Foreign-architecture indexes sometimes fail to download in part; the native ones
    # are all this needs, so a partial failure is not fatal.
    sudo_ apt-get update -qq || log "apt-get update reported errors; going on with what it fetched"
    apt_updated=1
  fi
  log "installing ${missing[*]}"
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

