#!/usr/bin/env bash
# Build the sample images as real multi-arch indexes and push them to the local registry.
#
#   sample_images/build.sh [--force] [NAME ...]
#
# NAME/Containerfile images are built with buildah; every binary in them is Debian's
# busybox (no Docker Hub): bookworm's busybox-static for the target architecture, trixie's
# where only trixie has the architecture (riscv64), or Debian's busybox source
# cross-compiled with zig where no Debian release has it (mips64, big-endian); see
# platforms.txt. The .debs are fetched with `apt-get download` and cached, so a later run,
# or a partially failing `apt-get update`, does not need the network again. NAME/layers images (debian,
# debian-defects) are Debian root filesystems made by mmdebstrap, see debian.sh for what
# they hold and which defects. An image whose inputs have not changed since its last push,
# and which the registry still has, is not rebuilt.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_TAG=samples
. "$here/../stack/lib.sh"

registry=${SAMPLE_REGISTRY:-127.0.0.1:5000}
tag=${SAMPLE_TAG:-1.0}
cache=${MULTIARCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/multiarch-harness}
debs=$cache/debs
work=$cache/sample-build
force=
[ "${1:-}" = --force ] && { force=1; shift; }

apt_install buildah curl

# platform -> where its busybox comes from (platforms.txt): a bookworm architecture in
# debarch; trixie:ARCH or zig:TARGET in bbsource
declare -A debarch bbsource
while read -r plat arch; do
  case "$plat" in ''|'#'*) continue;; esac
  case "$arch" in
    *:*) bbsource[$plat]=$arch ;;
    *) debarch[$plat]=$arch ;;
  esac
done <"$here/platforms.txt"

# --- the .debs --------------------------------------------------------------------------
fetch_debs() { # package arch...: PACKAGE:ARCH for each ARCH into $debs, unless cached there
  local pkg=$1 need=() arch; shift
  mkdir -p "$debs"
  for arch in $(printf '%s\n' "$@" | sort -u); do
    compgen -G "$debs/${pkg}_*_${arch}.deb" >/dev/null || need+=("$arch")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  log "fetching $pkg for: ${need[*]}"
  local native; native=$(dpkg --print-architecture)
  for arch in "${need[@]}"; do
    [ "$arch" = "$native" ] || dpkg --print-foreign-architectures | grep -qx "$arch" || sudo_ dpkg --add-architecture "$arch"
  done
  local try
  for try in 1 2 3; do
    # Some per-architecture indexes fail to download now and then ("File has unexpected
    # size", mirror sync): apt keeps the rest, so a failing update is retried, not fatal.
    sudo_ apt-get update -qq >/dev/null 2>&1 || log "apt-get update failed in part (try $try)"
    local left=()
    for arch in "${need[@]}"; do
      # apt drops privileges to _apt for downloads; a cache it cannot write into only
      # costs a warning, so download into a scratch dir it can and move the file.
      local tmp; tmp=$(mktemp -d); chmod 777 "$tmp"
      if (cd "$tmp" && apt-get download -qq "$pkg:$arch" >/dev/null 2>&1); then
        mv "$tmp"/*.deb "$debs/"
      else
        left+=("$arch")
      fi
      rm -rf "$tmp"
    done
    [ ${#left[@]} -eq 0 ] && return 0
    need=("${left[@]}")
    sleep $((try * 3))
  done
  die "could not download $pkg for ${need[*]} (apt-get download $pkg:ARCH); check the Debian mirror in /etc/apt/sources.list*"
}

deb_for() { compgen -G "$debs/${1}_*_$2.deb" | sort | tail -n 1; } # package arch

# --- the build context ----------------------------------------------------------------------
# rootfs/<TARGETARCH><TARGETVARIANT>/ holds the right busybox for each platform, and
# rootfs/arm/ the armhf one (what a Containerfile that ignores TARGETVARIANT picks up).
applets="sh ash uname cat echo ls env sleep true false id test [ printf wc head tail grep sed
  awk find gzip gunzip tar sha256sum md5sum mkdir rm cp mv ln chmod touch date seq expr tr
  sort uniq cut od hexdump dd stat readlink which xargs yes basename dirname ps kill hostname"

busybox_of() { # platform -> the path of its busybox binary
  local plat=$1 src=${bbsource[$1]:-} x
  case "$src" in
    trixie:*)
      x=$work/busybox-${src//:/-}
      rm -rf "$x"; dpkg-deb -x "$(compgen -G "$debian_trixie_debs/busybox-static_*_${src#trixie:}.deb" | sort | tail -n 1)" "$x"
      echo "$x/usr/bin/busybox" ;; # trixie's /usr is merged
    zig:*) echo "$work/busybox-${src#zig:}" ;;
    *)
      x=$work/busybox-${debarch[$plat]}
      rm -rf "$x"; dpkg-deb -x "$(deb_for busybox-static "${debarch[$plat]}")" "$x"
      echo "$x/bin/busybox" ;;
  esac
}

busybox_keys() { # what the busybox binaries are made from, for the inputs hash
  (cd "$debs" && ls busybox-static_*)
  (cd "$debian_trixie_debs" && ls busybox-static_*) 2>/dev/null || true
  local plat
  for plat in "${!bbsource[@]}"; do
    case "${bbsource[$plat]}" in zig:*) sha256sum <"$work/busybox-${bbsource[$plat]#zig:}" ;; esac
  done | sort
}

fetch_busyboxes() { # each platform's busybox: bookworm and trixie .debs, cross-compiled binaries
  # shellcheck disable=SC2046
  fetch_debs busybox-static $(printf '%s
' "${debarch[@]}")
  local plat src
  for plat in "${!bbsource[@]}"; do
    src=${bbsource[$plat]}
    case "$src" in
      trixie:*) fetch_trixie_deb busybox-static "${src#trixie:}" ;;
      zig:*) bash "$here/cross-busybox.sh" "${src#zig:}" "$work/busybox-${src#zig:}" ;;
      *) die "platforms.txt: $plat: unknown busybox source $src (an architecture, trixie:ARCH or zig:TARGET)" ;;
    esac
  done
}

make_rootfs() { # dir busybox
  local dir=$1
  mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc"
  install -m 0755 "$2" "$dir/bin/busybox"
  for a in $applets; do ln -sf busybox "$dir/bin/$a"; done
  chmod 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

prepare_context() {
  rm -rf "$work/context"; mkdir -p "$work/context/rootfs" "$work/context/vendor"
  local plat key
  for plat in "${!debarch[@]}" "${!bbsource[@]}"; do
    key=${plat#linux/}; key=${key//\//}            # linux/arm/v7 -> armv7
    make_rootfs "$work/context/rootfs/$key" "$(busybox_of "$plat")"
  done
  make_rootfs "$work/context/rootfs/arm" "$(busybox_of linux/arm/v7)"
  # The "vendor tarball" a careless Containerfile adds on every platform.
  local t; t=$(mktemp -d)
  cp "$work/context/rootfs/amd64/bin/busybox" "$t/tool"
  tar -C "$t" --owner=0 --group=0 -czf "$work/context/vendor/tool-linux-amd64.tar.gz" tool
  rm -rf "$t"
}

# --- building and pushing ----------------------------------------------------------------
# buildah 1.28 writes variant v7 into the config of every FROM-scratch arm image, whatever
# --platform says; correct the config so it states the platform it was built for.
set_config_platform() { # image os/arch[/variant]
  local img=$1 want=$2 have
  have=$(buildah inspect --type image --format '{{.OCIv1.OS}}/{{.OCIv1.Architecture}}/{{.OCIv1.Variant}}' "$img")
  [ "${have%/}" = "$want" ] && return 0
  set -- $(echo "$want" | tr / ' ')
  local c; c=$(buildah from --pull=never "$img" 2>/dev/null)
  buildah config --os "$1" --arch "$2" --variant "${3:-}" "$c"
  buildah commit --quiet "$c" "$img" >/dev/null
  buildah rm "$c" >/dev/null
}

# An image is rebuilt only when what it is made from changed (build.sh, platforms.txt, the
# files of its directory, the extra files named, and what stdin says: cache keys, package
# file names) or the registry no longer has it.
inputs_hash() { # name [file...] <keys
  local name=$1; shift
  { cat "$here/build.sh" "$here/platforms.txt" "$here/$name"/* "$@"; cat; } | sha256sum | cut -c1-16
}

in_registry() { # repo tag
  curl -fsI -o /dev/null \
    -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$registry/v2/$1/manifests/$2"
}

up_to_date() { # name hash
  [ -z "$force" ] && [ "$(cat "$work/$1.stamp" 2>/dev/null)" = "$2" ] && in_registry "samples/$1" "$tag"
}

mark_built() { echo "$2" >"$work/$1.stamp"; } # name hash

build_image() { # name
  local name=$1 list="sample-$1" repo="samples/$1" h
  h=$(busybox_keys | inputs_hash "$name" "$here/cross-busybox.sh")
  if up_to_date "$name" "$h"; then
    log "$registry/$repo:$tag is up to date"
    return 0
  fi
  [ -n "${context_ready:-}" ] || { prepare_context; context_ready=1; }
  log "building $registry/$repo:$tag"
  buildah manifest rm "$list" >/dev/null 2>&1 || true
  buildah manifest create "$list" >/dev/null
  local entry built=()
  # One build per platform. An entry INDEX@CONFIG is built as CONFIG with INDEX's
  # binaries and then listed in the index as INDEX (the mislabelled sample).
  for entry in $(grep -v '^#' "$here/$name/platforms"); do
    local idx=${entry%@*} cfg=${entry#*@} args=() img
    if [ "$entry" != "$idx" ]; then
      local key=${idx#linux/}; args=(--build-arg "BINARCH=${key//\//}")
    fi
    img="localhost/sample-$name-${idx//\//-}"
    buildah build --quiet --layers=false --platform "$cfg" "${args[@]}" \
      -t "$img" -f "$here/$name/Containerfile" "$work/context" >/dev/null 2>"$work/build.err" \
      || { cat "$work/build.err" >&2; die "building $name for $cfg failed"; }
    set_config_platform "$img" "$cfg"
    set -- $(echo "$idx" | tr / ' ')
    buildah manifest add --os "$1" --arch "$2" ${3:+--variant "$3"} "$list" "containers-storage:$img" >/dev/null
    built+=("$img")
  done
  local fmt=oci; [ -f "$here/$name/format" ] && fmt=$(cat "$here/$name/format")
  buildah manifest push --quiet --all --format "$fmt" --tls-verify=false "$list" "docker://$registry/$repo:$tag"
  buildah manifest rm "$list" >/dev/null 2>&1 || true
  buildah rmi "${built[@]}" >/dev/null 2>&1 || true
  mark_built "$name" "$h"
}

. "$here/debian.sh"

mkdir -p "$work"
fetch_busyboxes
names=("$@")
[ ${#names[@]} -gt 0 ] || for d in "$here"/*/; do
  [ -f "$d/Containerfile" ] || [ -f "$d/layers" ] && names+=("$(basename "$d")")
done
for n in "${names[@]}"; do
  if [ -f "$here/$n/Containerfile" ]; then
    build_image "$n"
  elif [ -f "$here/$n/layers" ]; then
    build_debian_image "$n"
  else
    die "no sample image '$n' (expected $here/$n/Containerfile or $here/$n/layers)"
  fi
done
