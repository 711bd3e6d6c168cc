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
# samples/debian-abi:1.0, the same six platforms: the same root and hello layers (the same
# blobs as samples/debian), then on four platforms one layer with one defect of the ABI, each
# a file of the right architecture that the platform still cannot run (linux/386 and
# linux/arm/v7 get no third layer and stay clean):
#   linux/ppc64le: a whiteout, usr/lib/powerpc64le-linux-gnu/.wh.libssl.so.3, removes the
#     real libssl.so.3 (no symlink leads to it: the name is the file) from the root, as an
#     image "slimmed" with `RUN rm` does. openssl and curl cannot start:
#       openssl: error while loading shared libraries: libssl.so.3: cannot open shared
#       object file: No such file or directory   (exit 127)
#   linux/s390x: /usr/local/bin/tree, the s390x binary of Debian trixie's tree package, built
#     against glibc 2.41: its .gnu.version_r needs GLIBC_2.38 (__isoc23_strtol and
#     __isoc23_strtoul, C23's strtol), newer than bookworm's glibc 2.36:
#       /usr/local/bin/tree: /lib/s390x-linux-gnu/libc.so.6: version `GLIBC_2.38' not found
#       (required by /usr/local/bin/tree)   (exit 1)
#   linux/amd64: two builds for x86-64-v3 (AVX2, FMA, BMI2, MOVBE) in an image whose index
#     says plain linux/amd64, which promises only x86-64 v1:
#     /usr/local/bin/hello-v3, sample_images/hello-c built with `gcc -O2 -march=x86-64-v3
#     -mneeded`: its GNU property note says "x86 ISA needed: x86-64-baseline, x86-64-v2,
#     x86-64-v3" (-Wa,-mx86-used-note=yes alone marks only the object file, as ISA *used*;
#     the linker keeps a used note only if every input has one, glibc's crti.o has none, and
#     the program says just "needed: x86-64-baseline", from Scrt1.o), so glibc's loader
#     refuses it on an older CPU instead of letting it die of SIGILL:
#       /usr/local/bin/hello-v3: CPU ISA level is lower than required   (exit 127)
#     /usr/local/bin/hello-go-v3, sample_images/hello built with GOAMD64=v3; Go's runtime
#     checks the CPU before main:
#       This program can only be run on AMD64 processors with v3 microarchitecture support.
#       (exit 1)
#     Both run on this machine's CPU, which has AVX2; `qemu-x86_64-static -cpu qemu64` (a v1
#     CPU) shows the failures above.
#   linux/arm64: /usr/local/bin/hello-4k, sample_images/hello-c cross-built with Debian's
#     gcc-aarch64-linux-gnu and -Wl,-z,max-page-size=4096 -Wl,-z,common-page-size=4096: every
#     PT_LOAD has p_align 0x1000 (Debian's own arm64 files have 0x10000), and its second
#     segment's address and file offset differ by 0x1000. It runs on a 4 KiB-page kernel, and
#     so under QEMU; a kernel with 16 or 64 KiB pages (Debian's arm64 64k kernel, Apple
#     silicon's 16 KiB) cannot map its segments. QEMU 7.2's page size option
#     (QEMU_PAGESIZE=65536, qemu-aarch64-static -p 65536) does not show it directly: QEMU
#     reports the larger page size only to a main program aligned for it, and tells
#     hello-4k 4096 (a 16 KiB-aligned build is told 4096 under -p 65536, 16384 under -p
#     16384). Run through the image's own loader, which is 64 KiB aligned, it is glibc that
#     maps hello-4k, with 64 KiB pages, and refuses it:
#       /usr/local/bin/hello-4k: error while loading shared libraries: /usr/local/bin/hello-4k:
#       ELF load command address/offset not page-aligned   (exit 127)
#     while Debian's own binaries load that way and run.
#     Beside it, /usr/local/bin/count-lse (sample_images/hello-c/count.c, -march=armv8.1-a):
#     its atomic add is an LSE instruction (ldaddal). QEMU's default CPU runs it; under
#     QEMU_CPU=cortex-a72 (the Raspberry Pi 4's ARMv8.0 core, --qemu-cpu
#     linux/arm64=cortex-a72) it dies of SIGILL (exit 132), as it would on the board. Nothing
#     in the file says so: only running it on the floor CPU shows it.
#
# samples/debian-v3:1.0, one platform, linux/amd64/v3: the amd64 root and hello layers and
# the same x86-64-v3 layer as samples/debian-abi's linux/amd64 (the same blobs). It is clean:
# its index promises x86-64-v3, so both v3 builds are right there.
#
# The trixie package comes from the same mirror through an apt of its own (sources list,
# state and cache under $cache/apt-trixie; the machine's apt is not touched) and is cached
# under $debs/trixie.
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
debian_trixie_apt=$cache/apt-trixie
debian_trixie_debs=$debs/trixie
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

# platform -> Debian architecture: platforms.txt's, and amd64 for linux/amd64/vN (Debian has
# one amd64 architecture; a variant is what the image's own files need).
debian_arch() {
  case $1 in
    linux/amd64/v*) echo amd64 ;;
    *) [ -n "${debarch[$1]:-}" ] || die "no Debian architecture for $1 in platforms.txt"; echo "${debarch[$1]}" ;;
  esac
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

go_build() { # out GOARCH [GOARM [GOAMD64]]
  (cd "$here/hello" && env CGO_ENABLED=0 GOOS=linux GOARCH="$2" GOARM="${3:-}" ${4:+GOAMD64="$4"} GOPROXY=off GOFLAGS=-buildvcs=false \
    GOCACHE="$cache/go-build" GOPATH="$cache/go" go build -trimpath -ldflags='-s -w -buildid=' -o "$1" .)
}

goarch_of() { # platform -> GOARCH and GOARM
  local a=${1#linux/}
  case $a in
    arm/v*) echo "arm ${a#arm/v}" ;;
    amd64/v*) echo amd64 ;; # the sample's hello is the plain one; the v3 builds are layer_v3's
    *) echo "$a" ;;
  esac
}

# The layers. Each prints the path of a gzip layer for the platform.
layer_root() { debian_root "$(debian_arch "$1")"; }

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

# --- samples/debian-abi and samples/debian-v3 -------------------------------------------------
layer_abi() { # platform: its one ABI defect, or nothing (no layer) where it has none
  case $1 in
    linux/amd64) layer_v3 "$1" ;;
    linux/arm64) layer_arm64_4k ;;
    linux/ppc64le) layer_ppc64le_no_libssl ;;
    linux/s390x) layer_s390x_trixie ;;
    *) ;;
  esac
}

abi_stage() { # -> a fresh, empty staging directory
  rm -rf "$work/debian-stage"; mkdir -p "$work/debian-stage" "$work/debian-layers"
  echo "$work/debian-stage"
}

abi_layer_of() { # stage name: the stage as $work/debian-layers/NAME.tar.gz, printed
  local out="$work/debian-layers/$2.tar.gz"
  chmod -R u=rwX,go=rX "$1"
  tar_layer "$1" "$out"
  rm -rf "$1"
  echo "$out"
}

load_aligns() { readelf -lW "$1" | awk '$1 == "LOAD" { print $NF }' | sort -u | xargs; } # elf file

# hello-v3 (C) and hello-go-v3 (Go), both for x86-64-v3; the same layer on linux/amd64 of
# debian-abi (a defect: that index entry promises v1) and on linux/amd64/v3 of debian-v3 (right).
layer_v3() {
  local stage bin; stage=$(abi_stage); bin=$stage/usr/local/bin
  mkdir -p "$bin"
  # -mneeded writes GNU_PROPERTY_X86_ISA_1_NEEDED, which glibc's loader checks; the
  # assembler's used-note marks only the object file: the link drops it (crti.o has none).
  (cd "$here/hello-c" && gcc -O2 -march=x86-64-v3 -mneeded -Wa,-mx86-used-note=yes -s -o "$bin/hello-v3" hello.c)
  readelf -nW "$bin/hello-v3" | grep -q 'x86 ISA needed: .*x86-64-v3' ||
    die "hello-v3 has no GNU property note saying it needs x86-64-v3"
  go_build "$bin/hello-go-v3" amd64 "" v3
  abi_layer_of "$stage" v3
}

# hello-4k: arm64, linked for 4 KiB pages only, against bookworm's glibc.
layer_arm64_4k() {
  local stage bin aligns; stage=$(abi_stage); bin=$stage/usr/local/bin
  mkdir -p "$bin"
  (cd "$here/hello-c" && aarch64-linux-gnu-gcc -O2 -s -Wl,-z,max-page-size=4096 -Wl,-z,common-page-size=4096 \
    -o "$bin/hello-4k" hello.c)
  aligns=$(load_aligns "$bin/hello-4k")
  [ "$aligns" = 0x1000 ] || die "hello-4k's PT_LOAD alignments are '$aligns', not only 0x1000"
  (cd "$here/hello-c" && aarch64-linux-gnu-gcc -O2 -s -march=armv8.1-a -o "$bin/count-lse" count.c)
  # grep reads it all: -q would stop early, and objdump die of SIGPIPE under pipefail
  aarch64-linux-gnu-objdump -d "$bin/count-lse" | grep ldadd >/dev/null || die "count-lse has no LSE atomic instruction"
  abi_layer_of "$stage" arm64-4k
}

# A whiteout that removes libssl.so.3 from the ppc64el root: the file its name leads to.
layer_ppc64le_no_libssl() {
  local stage x="$work/debian-extract" real; stage=$(abi_stage)
  rm -rf "$x"; mkdir -p "$x"
  tar -xzf "$(debian_root ppc64el)" -C "$x" --wildcards './usr/lib/powerpc64le-linux-gnu/libssl.so*'
  real=$(resolve_in "$x" /usr/lib/powerpc64le-linux-gnu/libssl.so.3)
  mkdir -p "$stage$(dirname "$real")"
  : >"$stage$(dirname "$real")/.wh.$(basename "$real")"
  rm -rf "$x"
  abi_layer_of "$stage" ppc64le-no-libssl
}

debian_trixie_binary=(tree /usr/bin/tree /usr/local/bin/tree) # package, its file, where the image has it

# tree from Debian trixie for s390x: built against glibc 2.41, it needs GLIBC_2.38.
layer_s390x_trixie() {
  local stage x="$work/debian-extract" pkg=${debian_trixie_binary[0]} from=${debian_trixie_binary[1]}
  local to=${debian_trixie_binary[2]} need deb
  stage=$(abi_stage)
  deb=$(compgen -G "$debian_trixie_debs/${pkg}_*_s390x.deb" | sort | tail -n 1)
  [ -n "$deb" ] || die "no trixie $pkg for s390x in $debian_trixie_debs"
  rm -rf "$x"; dpkg-deb -x "$deb" "$x"
  install -D -m 0755 "$x$from" "$stage$to"
  rm -rf "$x"
  need=$(readelf -VW "$stage$to" | grep -o 'GLIBC_2\.[0-9]*' | sort -uV | tail -n 1)
  [ "$(printf '%s\n' "$need" GLIBC_2.36 | sort -V | tail -n 1)" != GLIBC_2.36 ] ||
    die "trixie's $pkg for s390x needs only $need, which bookworm's glibc 2.36 has"
  abi_layer_of "$stage" s390x-trixie
}

fetch_trixie_deb() { # package arch: PACKAGE:ARCH from Debian trixie into $debian_trixie_debs, unless cached
  local pkg=$1 arch=$2 dir=$debian_trixie_apt/$2 try tmp
  compgen -G "$debian_trixie_debs/${pkg}_*_${arch}.deb" >/dev/null && return 0
  log "fetching $pkg:$arch from trixie"
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$debian_trixie_debs"
  echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $debian_mirror trixie main" \
    >"$dir/sources.list"
  # An apt of its own: its sources, lists, cache and an empty dpkg status; only $arch.
  local apt=(apt-get -qq -o "Dir::State=$dir" -o "Dir::State::Lists=$dir/lists" -o Dir::State::status=/dev/null
    -o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null -o "Dir::Cache=$dir/cache"
    -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o Debug::NoLocking=1)
  for try in 1 2 3; do
    # An index that fails to download in part (mirror sync, "File has unexpected size")
    # leaves apt with what it got, or the lists of an earlier try: go on, and retry.
    "${apt[@]}" update >"$dir/update.log" 2>&1 || log "apt-get update for trixie failed in part (try $try): $(tail -n 1 "$dir/update.log")"
    tmp=$(mktemp -d); chmod 777 "$tmp"
    if (cd "$tmp" && "${apt[@]}" download "$pkg:$arch" >/dev/null 2>&1); then
      mv "$tmp"/*.deb "$debian_trixie_debs/"
      rm -rf "$tmp"
      return 0
    fi
    rm -rf "$tmp"
    sleep $((try * 3))
  done
  die "could not download $pkg:$arch from trixie at $debian_mirror (see $dir/update.log)"
}

prepare_abi() {
  apt_install gcc libc6-dev binutils gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  fetch_trixie_deb "${debian_trixie_binary[0]}" s390x
}
prepare_v3() { apt_install gcc libc6-dev binutils; }

abi_tools() { # what makes the compiled layers
  gcc --version | head -n 1
  dpkg-query -W -f='${Package} ${Version}\n' libc6-dev binutils
  go version
}
keys_abi() {
  abi_tools
  aarch64-linux-gnu-gcc --version | head -n 1
  dpkg-query -W -f='${Package} ${Version}\n' libc6-dev-arm64-cross binutils-aarch64-linux-gnu
  (cd "$debian_trixie_debs" && ls "${debian_trixie_binary[0]}"_*_s390x.deb)
}
keys_v3() { abi_tools; }

declare -A debian_history=(
  [root]="mmdebstrap --variant=extract --include=$debian_packages (+ libc6-i386 on amd64, libc6:armhf on arm64) ${debian_suites[*]}"
  [hello]="COPY hello /usr/local/bin/hello"
  [defects]="COPY --from=build /out/ /"
  [abi]="COPY --from=build /out/ /  # amd64: x86-64-v3 builds; arm64: a 4 KiB-page build; ppc64le: libssl.so.3 removed; s390x: trixie's tree"
  [v3]="COPY --from=build-v3 /out/ /"
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
  # A kind may need tools or files of its own (prepare_KIND) and name what else makes its
  # layers (keys_KIND).
  for kind in "${kinds[@]}"; do ! declare -F "prepare_$kind" >/dev/null || "prepare_$kind"; done
  h=$({
    for plat in "${plats[@]}"; do debian_root_key "$(debian_arch "$plat")"; done
    for kind in "${kinds[@]}"; do ! declare -F "keys_$kind" >/dev/null || "keys_$kind"; done
  } | inputs_hash "$name" "$here/debian.sh" "$here/oci.py" "$here"/hello/* "$here"/hello-c/*)
  if up_to_date "$name" "$h"; then
    log "$registry/$repo:$tag is up to date"
    return 0
  fi
  log "building $registry/$repo:$tag"
  local specs=() history=() layers start layer
  for kind in "${kinds[@]}"; do history+=(--history "${debian_history[$kind]}"); done
  # shellcheck disable=SC2046
  debian_make_roots $(for plat in "${plats[@]}"; do debian_arch "$plat"; done | sort -u)
  for plat in "${plats[@]}"; do
    start=$SECONDS layers=()
    # A kind may give a platform no layer (layer_abi on a clean one): only the last kind may,
    # or the history texts, given in the order of the kinds, would name the wrong layers.
    for kind in "${kinds[@]}"; do
      layer=$("layer_$kind" "$plat")
      [ -z "$layer" ] || layers+=("$layer")
    done
    specs+=("$plat=$(IFS=,; echo "${layers[*]}")")
    log "$name $plat: layers ready in $((SECONDS - start)) s"
  done
  "${PYTHON:-python3}" "$here/oci.py" push "$registry/$repo:$tag" --env "PATH=$debian_path" --cmd bash \
    "${history[@]}" --mount-from samples/debian --mount-from samples/debian-defects \
    --mount-from samples/debian-abi "${specs[@]}" >/dev/null
  rm -rf "$work/debian-layers"
  mark_built "$name" "$h"
}
