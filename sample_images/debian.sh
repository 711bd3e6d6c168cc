# The Debian sample images, built from real Debian root filesystems. Sourced by build.sh,
# which provides log/die/apt_install, $here, $cache, $work, $registry, $tag, $debarch,
# fetch_debs, deb_for, inputs_hash, up_to_date and mark_built.
# shellcheck shell=bash disable=SC2154
#
# samples/debian:1.0, clean, on linux/amd64, 386, arm64, arm/v7, ppc64le, s390x:
#   layer 1, the root: Debian bookworm (with bookworm-updates; this mirror's
#     bookworm-security fails for ppc64el and i386), merged /usr, made by
#     `mmdebstrap --variant=extract` with bash, coreutils, python3-minimal, curl,
#     ca-certificates, openssl, libssl3 and what they depend on. Debian's own compat code
#     is there too: the amd64 root has libc6-i386 (32-bit x86 libraries under /usr/lib32,
#     loader /lib/ld-linux.so.2), the arm64 root libc6:armhf (32-bit ARM under
#     /usr/lib/arm-linux-gnueabihf, loader /lib/ld-linux-armhf.so.3). An audit that calls
#     them wrong raises a false alarm on every Debian system with multilib.
#   layer 2: /usr/local/bin/hello, a static Go program (sample_images/hello) built in module
#     mode with CGO_ENABLED=0 and the platform's GOARCH (GOARM=7 for arm/v7).
#
# samples/debian-defects:1.0, the same six platforms: the same root layers (the same blobs),
# then the layer a careless final `COPY --from=build /out/ /` stage adds:
#   linux/arm64: /usr/lib/aarch64-linux-gnu/libssl.so.3 (the file its symlinks lead to,
#     names kept) is amd64's libssl.so.3, x86-64 code. openssl and curl cannot start: the
#     loader skips the file and finds no other libssl.so.3.
#   linux/arm64: amd64's python3-yaml in /usr/lib/python3/dist-packages, with
#     yaml/_yaml.cpython-311-x86_64-linux-gnu.so, an x86-64 extension module. arm64's
#     Python never loads a module of that name: `import yaml` falls back to the pure-Python
#     parser without a word, so only an audit finds it.
#   linux/arm/v7: /usr/local/bin/hello built with GOARCH=arm64 (the release script maps
#     every arm to arm64): AArch64 code, and its build info says GOARCH=arm64. An ARMv7
#     board answers exec format error; under emulation the kernel hands it to QEMU's aarch64
#     handler, which runs it, unless the container's QEMU_CPU names a CPU that handler does
#     not know (the harness gives arm/v7 a Cortex-A15).
#   elsewhere the layer holds the right hello again.
#
# The extract variant runs no maintainer script, so a foreign root needs no emulation
# (about 5 s a platform, against 4-5 minutes for --variant=apt under QEMU). What those
# scripts would have made, and the image needs, is made by debian_fixups: /etc/passwd and
# /etc/group (base-passwd), /etc/ld.so.conf (libc-bin) and the CA bundle
# (update-ca-certificates). There is no /etc/ld.so.cache: the loader then searches its
# built-in directories, which on Debian are the multiarch ones. The dpkg database stays
# empty, and alternatives (awk) are not set up.
#
# Cached under $cache/debian-roots: each root as its gzip layer, named by a key of what
# makes it (mmdebstrap's version, mirror, suites, architectures, packages, fixups). Remove
# that directory to fetch the roots again from the mirror.

debian_mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debian_suites=(bookworm bookworm-updates)
debian_packages=bash,coreutils,python3-minimal,curl,ca-certificates,openssl,libssl3
declare -A debian_compat=([amd64]=libc6-i386 [arm64]=libc6:armhf)
declare -A debian_compat_arch=([arm64]=armhf)
debian_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
debian_roots=$cache/debian-roots
# Every file's mtime is clamped to this, so the same packages give the same layer.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}

# What the maintainer scripts would have written that the image needs. $1: the root.
debian_fixups() {
  local root=$1
  rm -f "$root/etc/resolv.conf" "$root/etc/hostname" # copies of this host's; engines mount their own
  find "$root/dev" -mindepth 1 -delete                # the engine makes /dev
  printf '%s\n' 'root:x:0:0:root:/root:/bin/bash' 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin' \
    >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'tty:x:5:' 'staff:x:50:' 'nogroup:x:65534:' >"$root/etc/group"
  printf 'include /etc/ld.so.conf.d/*.conf\n' >"$root/etc/ld.so.conf"
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt >"$root/etc/ssl/certs/ca-certificates.crt"
}

debian_root_key() { # debarch
  {
    echo "$debian_mmdebstrap"
    echo "$debian_mirror ${debian_suites[*]} $1 ${debian_compat_arch[$1]:-} $debian_packages ${debian_compat[$1]:-}"
    echo "$SOURCE_DATE_EPOCH"
    declare -f debian_fixups
  } | sha256sum | cut -c1-16
}

debian_root_file() { echo "$debian_roots/$1-$(debian_root_key "$1").tar.gz"; } # debarch

debian_root() { # debarch -> prints the path of its root layer, made if it is not cached
  local arch=$1 out
  out=$(debian_root_file "$arch")
  if [ ! -f "$out" ]; then
    mkdir -p "$debian_roots"
    rm -f "$debian_roots/$arch"-*.tar.gz # made from other inputs
    local dir="$work/debian-root-$arch" err="$work/mmdebstrap-$arch.err" start=$SECONDS try sources=() suite
    local arches=$arch${debian_compat_arch[$arch]:+,${debian_compat_arch[$arch]}}
    local include=$debian_packages${debian_compat[$arch]:+,${debian_compat[$arch]}}
    for suite in "${debian_suites[@]}"; do sources+=("deb $debian_mirror $suite main"); done
    for try in 1 2 3; do
      rm -rf "$dir"
      # A per-architecture index that fails to download fails mmdebstrap's own apt-get
      # update; mirrors recover, so it is retried.
      mmdebstrap --quiet --variant=extract --architectures="$arches" --include="$include" \
        --setup-hook=/usr/share/mmdebstrap/hooks/merged-usr/setup00.sh \
        --format=directory "${debian_suites[0]}" "$dir" "${sources[@]}" 2>"$err" && break
      log "mmdebstrap for $arch failed (try $try): $(tail -n 1 "$err")"
      [ "$try" = 3 ] && { cat "$err" >&2; die "could not make the Debian $arch root from $debian_mirror"; }
      sleep $((try * 5))
    done
    local m
    for m in dev proc sys; do ! mountpoint -q "$dir/$m" || die "$dir/$m is still mounted; not touching it"; done
    debian_fixups "$dir"
    tar_layer "$dir" "$out"
    rm -rf "$dir" "$err"
    log "root for $arch: $((SECONDS - start)) s, $(du -m "$out" | cut -f1) MB gzip"
  fi
  echo "$out"
}

debian_make_roots() { # debarch...: the roots not cached yet, two at a time (mmdebstrap waits on the mirror, gzip on a core)
  local arch pids=() pid
  for arch in "$@"; do
    [ -f "$(debian_root_file "$arch")" ] && continue
    debian_root "$arch" >/dev/null &
    pids+=($!)
    if [ ${#pids[@]} -ge 2 ]; then
      wait "${pids[0]}" || die "making a Debian root failed"
      pids=("${pids[@]:1}")
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || die "making a Debian root failed"; done
}

tar_layer() { # dir out.tar.gz: the directory as a reproducible gzip layer
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime --numeric-owner --format=pax \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$1" -cf - . |
    gzip -n -6 >"$2.tmp"
  mv "$2.tmp" "$2"
}

go_build() { # out GOARCH [GOARM]
  (cd "$here/hello" && env CGO_ENABLED=0 GOOS=linux GOARCH="$2" GOARM="${3:-}" GOPROXY=off GOFLAGS=-buildvcs=false \
    GOCACHE="$cache/go-build" GOPATH="$cache/go" go build -trimpath -ldflags='-s -w -buildid=' -o "$1" .)
}

goarch_of() { # platform -> GOARCH and GOARM
  local a=${1#linux/}
  case $a in
    arm/v*) echo "arm ${a#arm/v}" ;;
    *) echo "$a" ;;
  esac
}

# The layers. Each prints the path of a gzip layer for the platform.
layer_root() { debian_root "${debarch[$1]}"; }

layer_hello() { # platform [GOARCH [GOARM]]: /usr/local/bin/hello, for the platform unless told
  local plat=$1 stage="$work/debian-stage" out goarch goarm
  if [ $# -gt 1 ]; then goarch=$2 goarm=${3:-}; else read -r goarch goarm <<<"$(goarch_of "$plat")"; fi
  out="$work/debian-layers/hello-${plat//\//-}${2:+-as-$2}.tar.gz"
  rm -rf "$stage"; mkdir -p "$stage/usr/local/bin" "$(dirname "$out")"
  go_build "$stage/usr/local/bin/hello" "$goarch" "$goarm"
  chmod -R u=rwX,go=rX "$stage"
  tar_layer "$stage" "$out"
  rm -rf "$stage"
  echo "$out"
}

layer_defects() { # platform: what the careless final stage copies
  local plat=$1
  case $plat in
    linux/arm/*) layer_hello "$plat" arm64 ;;
    linux/arm64) layer_arm64_defects ;;
    *) layer_hello "$plat" ;;
  esac
}

layer_arm64_defects() {
  local stage="$work/debian-stage" x="$work/debian-extract" out="$work/debian-layers/defects-linux-arm64.tar.gz"
  rm -rf "$stage" "$x"; mkdir -p "$stage/usr/local/bin" "$x/amd64" "$x/arm64"
  go_build "$stage/usr/local/bin/hello" arm64
  # amd64's libssl.so.3 over arm64's: over the file the name resolves to, in either root.
  tar -xzf "$(debian_root amd64)" -C "$x/amd64" --wildcards './usr/lib/x86_64-linux-gnu/libssl.so*'
  tar -xzf "$(debian_root arm64)" -C "$x/arm64" --wildcards './usr/lib/aarch64-linux-gnu/libssl.so*'
  local from to
  from=$(resolve_in "$x/amd64" /usr/lib/x86_64-linux-gnu/libssl.so.3)
  to=$(resolve_in "$x/arm64" /usr/lib/aarch64-linux-gnu/libssl.so.3)
  install -D -m 0644 "$x/amd64$from" "$stage$to"
  # amd64's python3-yaml, as a site-packages built on an amd64 runner.
  dpkg-deb -x "$(deb_for python3-yaml amd64)" "$x/yaml"
  mkdir -p "$stage/usr/lib/python3"
  cp -a "$x/yaml/usr/lib/python3/dist-packages" "$stage/usr/lib/python3/"
  compgen -G "$stage/usr/lib/python3/dist-packages/yaml/_yaml.cpython-*-x86_64-linux-gnu.so" >/dev/null ||
    die "python3-yaml:amd64 has no x86-64 extension module where expected"
  chmod -R u=rwX,go=rX "$stage"
  mkdir -p "$(dirname "$out")"
  tar_layer "$stage" "$out"
  rm -rf "$stage" "$x"
  echo "$out"
}

resolve_in() { # root path: where path's symlinks lead inside root (directories taken as they are)
  local root=$1 p=$2 t n=0
  while [ -L "$root$p" ]; do
    t=$(readlink "$root$p")
    case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
    p=$(realpath -m -s "$p")
    n=$((n + 1)); [ $n -lt 40 ] || die "a symlink loop at $2 in $root"
  done
  [ -f "$root$p" ] || die "$2 leads to $p, which is not in $root"
  echo "$p"
}

declare -A debian_history=(
  [root]="mmdebstrap --variant=extract --include=$debian_packages (+ libc6-i386 on amd64, libc6:armhf on arm64) ${debian_suites[*]}"
  [hello]="COPY hello /usr/local/bin/hello"
  [defects]="COPY --from=build /out/ /"
)

debian_mmdebstrap=
debian_prepare() {
  [ -n "$debian_mmdebstrap" ] && return 0
  apt_install mmdebstrap arch-test golang-go
  fetch_debs python3-yaml amd64
  debian_mmdebstrap=$(mmdebstrap --version) # a key of every root
}

build_debian_image() { # name: the layers named in NAME/layers, on the platforms in NAME/platforms
  local name=$1 repo="samples/$1" h plat kind
  local plats kinds
  read -r -a plats <<<"$(grep -v '^#' "$here/$name/platforms" | xargs)"
  read -r -a kinds <<<"$(grep -v '^#' "$here/$name/layers" | xargs)"
  debian_prepare
  h=$(for plat in "${plats[@]}"; do debian_root_key "${debarch[$plat]}"; done |
    inputs_hash "$name" "$here/debian.sh" "$here/oci.py" "$here"/hello/*)
  if up_to_date "$name" "$h"; then
    log "$registry/$repo:$tag is up to date"
    return 0
  fi
  log "building $registry/$repo:$tag"
  local specs=() history=() layers start
  for kind in "${kinds[@]}"; do history+=(--history "${debian_history[$kind]}"); done
  # shellcheck disable=SC2046
  debian_make_roots $(for plat in "${plats[@]}"; do echo "${debarch[$plat]}"; done | sort -u)
  for plat in "${plats[@]}"; do
    start=$SECONDS layers=()
    for kind in "${kinds[@]}"; do layers+=("$("layer_$kind" "$plat")"); done
    specs+=("$plat=$(IFS=,; echo "${layers[*]}")")
    log "$name $plat: layers ready in $((SECONDS - start)) s"
  done
  "${PYTHON:-python3}" "$here/oci.py" push "$registry/$repo:$tag" --env "PATH=$debian_path" --cmd bash \
    "${history[@]}" --mount-from samples/debian --mount-from samples/debian-defects "${specs[@]}" >/dev/null
  rm -rf "$work/debian-layers"
  mark_built "$name" "$h"
}
