#!/usr/bin/env bash
# A static busybox for an architecture Debian has no busybox-static package for here,
# built from Debian's own busybox source package with Zig's C compiler (PyPI's ziglang).
#
#   sample_images/cross-busybox.sh ZIG_TARGET OUT_FILE
#   e.g. sample_images/cross-busybox.sh mips64-linux-muslabi64 /tmp/bb-mips64
#        sample_images/cross-busybox.sh loongarch64-linux-musl /tmp/bb-loong64
#
# Or sourced (build.sh): it then only defines cross_busybox ZIG_TARGET OUT_FILE, which runs
# in a subshell of its own, so its traps, lock and `die` do not reach the caller's shell
# (a failure is its exit status). Its helpers are named cbb_*.
#
# Everything comes from the Debian mirror and PyPI:
#   - the busybox source package of Debian $cbb_suite, through an apt of its own (sources
#     list, lists and archives under the cache dir, an empty dpkg status: the machine's apt
#     is not touched), from $DEBIAN_MIRROR or else the mirror this machine's apt already
#     uses for $cbb_suite;
#   - ziglang==$cbb_zig_version in a venv under the cache dir; zig brings musl and the Linux
#     headers for every target, so no cross toolchain is needed. busybox's host tools
#     (Kconfig, applet tables) are built with the host's gcc. What the build needs of the host
#     is installed with the machine's apt if missing (lib.sh's apt_install): dpkg-dev, bzip2,
#     xz-utils, make, gcc, libc6-dev, file, qemu-user-static.
# The configuration is Debian's static flavour (debian/config/pkg/static: FEATURE_SH_STANDALONE
# and FEATURE_PREFER_APPLETS, so `busybox sh` runs its own applets before any in $PATH),
# less the few options, cbb_config_off, that need glibc or pre-6.8 kernel headers.
#
# Before a binary is kept it is checked: a static, stripped ELF for the target, and, when a
# QEMU user emulator for it is installed, run under it with an empty PATH (applets only). A
# binary that does not run there is still kept and returned (QEMU may be what is wrong), with
# a warning; the outcome is kept beside it, in BINARY.smoke, and repeated by cached calls.
#
# Cache, under ${MULTIARCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/multiarch-harness}/cross-busybox:
#   src/        the .dsc and tarballs, fetched once: remove it to fetch the suite's newest
#   apt/        the private apt's state
#   zig-VERSION/  the ziglang venv
#   bin/busybox-TARGET-KEY (+ .smoke)  the binaries; KEY hashes the zig version, the source
#               version, the target and this script, so changing any of them rebuilds
#   build-TARGET/, TARGET.log  the tree and log of the last build (the tree is removed after
#               a good one; zig's object cache lives in it, so it does not grow the cache)
#   lock        flock'd by every call that fetches or builds, so they wait for each other; a
#               cached binary is returned without it. The same inputs give the same bytes.
# Environment: MULTIARCH_CACHE_DIR / XDG_CACHE_HOME (where), DEBIAN_MIRROR, PYTHON (the
# python3 that makes the venv).
# shellcheck shell=bash source-path=SCRIPTDIR

cbb_zig_version=0.15.2
cbb_suite=bookworm
cbb_self=$(realpath "${BASH_SOURCE[0]}")

# Options of Debian's static config that do not build against musl or zig's kernel headers,
# with why. Turning them off removes only those features (no applet but tc).
declare -A cbb_config_off=(
  [EXTRA_COMPAT]="grep's GNU extensions use glibc's re_search/re_compile_pattern, which musl has not"
  [FEATURE_VI_REGEX_SEARCH]="vi's regex search uses glibc's re_search and REG_STARTEND, which musl has not"
  [TC]="tc.c needs the CBQ definitions that Linux 6.8 removed from the uapi headers zig ships"
)

# Compiler flags for a target, beyond -target. zig 0.16 and later put LSX, LoongArch's 128-bit
# SIMD, in loongarch64's baseline, and musl's code then has LSX instructions (vrepli.b...);
# QEMU 7.2, Debian 12's, implements neither LSX nor LASX (8.1 does): such a program dies of
# SIGILL at its first stdio call. Without them it runs there and on every LoongArch CPU.
cbb_cflags() { # zig-target
  case $1 in
    loongarch64-*) echo -mno-lsx -mno-lasx ;;
  esac
}

cross_busybox() ( # zig-target out-file
  set -euo pipefail
  [ $# -eq 2 ] || die "usage: cross-busybox.sh ZIG_TARGET OUT_FILE (e.g. mips64-linux-muslabi64 /tmp/busybox)"
  local target=$1 out=$2
  case $target in *-linux-musl*) ;; *) die "$target: only *-linux-musl* targets make a static busybox" ;; esac
  local dir=${MULTIARCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/multiarch-harness}/cross-busybox
  mkdir -p "$dir/src" "$dir/bin"
  local dsc bin version
  dsc=$(cbb_dsc "$dir")
  # A cached binary needs no lock (it is only ever renamed into place, whole): a call for a
  # built target does not wait for another target's build.
  if [ -z "$dsc" ] || [ ! -f "$(cbb_bin "$dir" "$dsc" "$target")" ]; then
    exec 9>"$dir/lock"
    flock -n 9 || { log "waiting for another cross-busybox call to finish"; flock 9; }
    dsc=$(cbb_source "$dir")
  fi
  bin=$(cbb_bin "$dir" "$dsc" "$target")
  version=$(cbb_version "$dsc")
  if [ -f "$bin" ]; then
    log "busybox $version for $target: cached ($bin)"
    case $(tail -n 1 "$bin.smoke") in ok) ;; failed:*) log "warning: under QEMU it $(tail -n 1 "$bin.smoke")" ;;
      *) log "note: under QEMU: $(tail -n 1 "$bin.smoke")" ;; esac
  else
    cbb_build "$dir" "$dsc" "$version" "$target" "$bin"
  fi
  mkdir -p "$(dirname "$out")"
  cp "$bin" "$out.tmp.$$"
  mv -f "$out.tmp.$$" "$out"
)

cbb_mirror() { # -> the Debian mirror: $DEBIAN_MIRROR, else the one this machine's apt uses for $cbb_suite
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local m f files=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || { echo http://deb.debian.org/debian; return; }
  # One-line sources ("deb [opts] URI SUITE ...") and deb822 stanzas (Types/URIs/Suites).
  m=$(awk -v suite="$cbb_suite" '
    function flush() {
      if (on && index(" " t " ", " deb ") && index(" " s " ", " " suite " ") && u != "") { found = 1; print u; exit }
      t = ""; u = ""; s = ""; on = 1
    }
    FNR == 1 { flush() }
    /^[ \t]*#/ { next }
    FILENAME ~ /\.list$/ {
      sub(/\[[^]]*\]/, "")
      if ($1 == "deb" && $3 == suite) { found = 1; print $2; exit }
      next
    }
    /^[ \t]*$/ { flush(); next }
    tolower($1) == "types:" { $1 = ""; t = $0 }
    tolower($1) == "uris:" { u = $2 }
    tolower($1) == "suites:" { $1 = ""; s = $0 }
    tolower($1) == "enabled:" { on = (tolower($2) != "no") }
    END { if (!found) flush() }
  ' "${files[@]}") || true
  echo "${m:-http://deb.debian.org/debian}"
}

cbb_dsc() { # cache-dir -> the path of the cached busybox .dsc, or nothing
  compgen -G "$1/src/busybox_*.dsc" | sort -V | tail -n 1 || true
}

cbb_version() { sed -n 's/^Version: //p' "$1"; } # dsc

cbb_bin() { # cache-dir dsc target -> where the binary made from these inputs is cached
  local key
  key=$(printf '%s\n' "zig $cbb_zig_version" "busybox $(cbb_version "$2")" "target $3" \
    "script $(sha256sum <"$cbb_self" | cut -d' ' -f1)" | sha256sum | cut -c1-16)
  echo "$1/bin/busybox-$3-$key"
}

cbb_source() { # cache-dir -> the path of busybox's .dsc in DIR/src, fetched there unless it is
  local dir=$1 dsc
  dsc=$(cbb_dsc "$dir")
  if [ -n "$dsc" ]; then echo "$dsc"; return; fi
  local mirror apt_dir=$dir/apt try tmp
  mirror=$(cbb_mirror)
  log "fetching busybox's source package from $mirror $cbb_suite"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $cbb_suite main" \
    >"$apt_dir/sources.list"
  # An apt of its own, as debian.sh's fetch_trixie_deb: its sources, lists, cache, no status.
  local apt=(apt-get -qq -o "Dir::State=$apt_dir" -o "Dir::State::Lists=$apt_dir/lists"
    -o Dir::State::status=/dev/null -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o Dir::Etc::SourceParts=/dev/null -o Dir::Etc::Preferences=/dev/null
    -o Dir::Etc::PreferencesParts=/dev/null -o "Dir::Cache=$apt_dir/cache" -o Debug::NoLocking=1)
  for try in 1 2 3; do
    # A mirror in sync can fail an index in part; apt keeps what it got: go on, and retry.
    "${apt[@]}" update >"$apt_dir/update.log" 2>&1 ||
      log "apt-get update for $cbb_suite sources failed in part (try $try): $(tail -n 1 "$apt_dir/update.log")"
    # apt downloads as _apt: into a directory it can write, then renamed into src/, the
    # .dsc last (a lock-free cbb_dsc may look at any time).
    tmp=$(mktemp -d "$dir/src.XXXXXX"); chmod 777 "$tmp"
    if (cd "$tmp" && "${apt[@]}" source --download-only busybox >"$apt_dir/source.log" 2>&1) &&
      compgen -G "$tmp/busybox_*.dsc" >/dev/null; then
      find "$tmp" -maxdepth 1 -type f ! -name '*.dsc' -exec mv -t "$dir/src/" {} +
      mv "$tmp"/*.dsc "$dir/src/"
      rm -rf "$tmp"
      cbb_dsc "$dir"
      return
    fi
    rm -rf "$tmp"
    sleep $((try * 3))
  done
  die "could not download busybox's source from $mirror $cbb_suite (see $apt_dir/update.log, $apt_dir/source.log)"
}

cbb_zig() { # cache-dir -> the path of the zig binary of ziglang==$cbb_zig_version, installed unless it is
  local venv=$1/zig-$cbb_zig_version
  if [ "$("$venv/bin/python" -m ziglang version 2>/dev/null)" != "$cbb_zig_version" ]; then
    log "installing ziglang==$cbb_zig_version into $venv"
    rm -rf "$venv"
    "${PYTHON:-python3}" -m venv "$venv" || die "could not make a venv with ${PYTHON:-python3} (python3-venv missing?)"
    "$venv/bin/pip" install -q "ziglang==$cbb_zig_version" >"$venv.log" 2>&1 ||
      { tail -n 5 "$venv.log" >&2; rm -rf "$venv"; die "could not install ziglang==$cbb_zig_version"; }
  fi
  # The zig binary itself, not `python -m ziglang`, which only execs it: a python start-up
  # saved on each of busybox's ~600 compiler runs.
  "$venv/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))'
}

cbb_build() { # cache-dir dsc version target bin: build busybox for TARGET into BIN
  local dir=$1 dsc=$2 version=$3 target=$4 bin=$5
  local b=$dir/build-$target logf=$dir/$target.log zig start=$SECONDS
  apt_install dpkg-dev bzip2 xz-utils make gcc libc6-dev file qemu-user-static
  zig=$(cbb_zig "$dir")
  log "building busybox $version for $target with zig $cbb_zig_version (log: $logf)"
  rm -rf "$b"
  mkdir -p "$b/tools"
  dpkg-source -x "$dsc" "$b/src" >"$logf" 2>&1 || { cat "$logf" >&2; die "dpkg-source -x $dsc failed"; }

  # busybox calls $(CROSS_COMPILE)gcc and $(CROSS_COMPILE)ar: both are zig. The final link
  # asks for a map and --verbose (scripts/trylink's INFO_OPTS), which zig's driver rejects.
  local cross=$b/tools/$target-
  cat >"${cross}gcc" <<EOF
#!/bin/sh
for a; do shift; case \$a in -Wl,--warn-common|-Wl,--verbose|-Wl,-Map,*) ;; *) set -- "\$@" "\$a" ;; esac; done
exec '$zig' cc -target '$target' $(cbb_cflags "$target") "\$@"
EOF
  printf '#!/bin/sh\nexec %s ar "$@"\n' "'$zig'" >"${cross}ar"
  chmod +x "${cross}gcc" "${cross}ar"
  # zig caches every object it compiles: kept in the build tree, it goes with it.
  export ZIG_GLOBAL_CACHE_DIR=$b/zig-cache ZIG_LOCAL_CACHE_DIR=$b/zig-cache
  # No build date in the banner or .config: the same inputs give the same binary.
  export KCONFIG_NOTIMESTAMP=1
  local mk=(make -C "$b/src" ARCH="${target%%-*}" CROSS_COMPILE="$cross" HOSTCC=gcc)

  cp "$b/src/debian/config/pkg/static" "$b/src/.config"
  local opt
  for opt in "${!cbb_config_off[@]}"; do
    log "turning off CONFIG_$opt: ${cbb_config_off[$opt]}"
    sed -i "s/^CONFIG_$opt=.*/# CONFIG_$opt is not set/" "$b/src/.config"
  done
  (yes "" || true) | "${mk[@]}" oldconfig >>"$logf" 2>&1 || { tail -n 20 "$logf" >&2; die "make oldconfig failed"; }
  for opt in "${!cbb_config_off[@]}"; do
    ! grep -q "^CONFIG_$opt=" "$b/src/.config" || die "CONFIG_$opt is still set after oldconfig"
  done
  for opt in STATIC FEATURE_SH_STANDALONE FEATURE_PREFER_APPLETS; do
    grep -qx "CONFIG_$opt=y" "$b/src/.config" || die "Debian's static config has no CONFIG_$opt=y"
  done
  log "options changed from Debian's static config (with what depends on them): $(
    diff "$b/src/debian/config/pkg/static" "$b/src/.config" | sed -n 's/^> \(# \)*CONFIG_\([A-Za-z0-9_]*\).*/\2/p' | xargs)"

  # -s: stripped by the link, as zig's objcopy cannot strip afterwards (it rejects
  # foreign-endian ELF, so mips64, and LoongArch). The banner says where it came from, not when.
  "${mk[@]}" -j2 SKIP_STRIP=y EXTRA_LDFLAGS=-s \
    BB_EXTRA_VERSION="Debian $version, zig cc $cbb_zig_version -target $target" busybox >>"$logf" 2>&1 ||
    { grep -E 'error|Error' "$logf" | tail -n 20 >&2; die "building busybox for $target failed (see $logf)"; }
  local elf=$b/src/busybox
  cbb_check_elf "$elf" "$target"
  cbb_smoke "$elf" "$target" >"$b/smoke" || true
  cat "$b/smoke" >>"$logf"

  rm -f "$dir/bin/busybox-$target"-* # made from other inputs
  cp "$b/smoke" "$bin.smoke"
  cp "$elf" "$bin.tmp"
  mv "$bin.tmp" "$bin"
  log "busybox for $target: $((SECONDS - start)) s, $(stat -c %s "$bin") bytes"
  rm -rf "$b"
}

cbb_check_elf() { # file target: a static, stripped ELF of the target's machine, or die
  local f=$1 target=$2 what want=
  what=$(file -b "$f")
  case $target in
    mips64-*) want="64-bit MSB executable, MIPS" ;;
    mips64el-*) want="64-bit LSB executable, MIPS" ;;
    loongarch64-*) want="64-bit LSB executable, LoongArch" ;;
    riscv64-*) want="64-bit LSB executable, UCB RISC-V" ;;
  esac
  case $what in "ELF "*"$want"*", statically linked"*", stripped"*) ;; *)
    die "$f is not a static stripped ELF${want:+ ($want)}: $what" ;; esac
  [ -n "$want" ] || log "no expected ELF machine known for $target: not checked ($what)"
}

cbb_qemu() { # target -> the QEMU user emulator for it, if one is installed
  local arch=${1%%-*} q
  case $1 in
    mips64*-*abin32) arch=mipsn32${arch#mips64} ;;
    powerpc64*) arch=ppc64${arch#powerpc64} ;;
    powerpc*) arch=ppc ;;
    x86-*) arch=i386 ;;
  esac
  for q in "qemu-$arch-static" "qemu-$arch"; do
    command -v "$q" && return 0
  done
  return 1
}

# Runs the binary under QEMU user mode, as its own `sh -c`, with an empty PATH so that every
# command must be an applet (a host binary run from the emulated shell would run natively and
# pass). Prints each command and its output, then "ok", "not run: WHY" or "failed: WHY" (and
# then exits 1).
cbb_smoke() { # file target
  local f=$1 target=$2 qemu t rc=0 want got
  qemu=$(cbb_qemu "$target") || { echo "not run: no QEMU user emulator for $target"; return 0; }
  t=$(mktemp -d)
  cp "$f" "$t/busybox"
  # shellcheck disable=SC2016 # expanded by busybox's sh, not here
  local -a cmds=(
    'echo hello from $(uname -m)'
    'yes multiarch | head -n 1000 | sha256sum'
    'seq 1 200000 > n && gzip -c n | gunzip -c | cmp - n && echo same'
    'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo $i'
  )
  local -a wants=(
    "hello from "
    "$(yes multiarch | head -n 1000 | sha256sum)"
    "same"
    "20000"
  )
  local i why=
  for i in "${!cmds[@]}"; do
    got=$(cd "$t" && timeout 300 env -i PATH=/nonexistent "$qemu" ./busybox sh -c "${cmds[$i]}" 2>&1) || rc=$?
    want=${wants[$i]}
    printf "\$ %s ./busybox sh -c '%s'\n%s\n" "$(basename "$qemu")" "${cmds[$i]}" "$got"
    if [ "$rc" != 0 ]; then
      why="exit $rc under $qemu"
      [ "$rc" -le 128 ] || [ "$rc" -ge 160 ] || why+=" (SIG$(kill -l $((rc - 128))))"
      break
    fi
    case $got in "$want"*) ;; *) why="'${cmds[$i]}' printed '$got', not '$want'"; break ;; esac
  done
  rm -rf "$t"
  if [ -n "$why" ]; then
    log "warning: busybox for $target does not run right under QEMU: $why"
    echo "failed: $why"
    return 1
  fi
  echo ok
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  LOG_TAG='cross-busybox'
  # shellcheck source=../stack/lib.sh
  . "$(dirname "$cbb_self")/../stack/lib.sh"
  cross_busybox "$@"
elif ! declare -F apt_install >/dev/null; then
  # shellcheck source=../stack/lib.sh
  . "$(dirname "$cbb_self")/../stack/lib.sh"
fi
