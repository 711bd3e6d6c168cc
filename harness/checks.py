"""The built-in checks of one (image, platform): config, elf and uname.

Each returns a :class:`CheckResult` whose detail a person can act on: what was expected,
what was found, and where.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .arch import ARM_CPU_ARCH, ARM_MAX_CPU_ARCH, expected_uname, page_sizes, spec_for
from .elf import ABI_BITS, EM_ARM, ELFInfo
from .errors import MultiarchError
from .layers import Filesystem, Node
from .loader import Flavor, Missing, Resolver, VersionProblem
from .manifest import ImageConfig
from .platform import Platform

if TYPE_CHECKING:
    from .container import CommandResult
    from .planner import Target

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"
#: Reasons a check may be skipped on a platform that the gate lets pass (each check's
#: ``skip_allowed`` in the table below): the image has nothing for the check to look at.
#: Anything else (a platform that could not run, say) is a check that did not run.
NO_ELF_FILES = "no-elf-files"
NO_DYNAMIC = "no-dynamic-files"
NO_UNAME = "no-uname"
#: How many offending paths a detail names before it summarises the rest.
MAX_LISTED = 8


@dataclass(frozen=True)
class CheckResult:
    outcome: str
    detail: str
    #: Time spent in commands inside the container, where the check ran any.
    command_s: float | None = None
    #: Timed commands (the slowdown probe): name -> seconds.
    samples: dict[str, float] | None = None
    #: Findings that do not fail the check, each a sentence naming the path.
    warnings: tuple[str, ...] = ()
    #: Why a skipped check was skipped, when it is one of its ``skip_allowed`` reasons.
    skip: str = ""
    #: Every finding that fails the check, one sentence each and in full, where the detail
    #: names the first few: what a release is compared by with the one before it.
    findings: tuple[str, ...] = ()

    @property
    def sentences(self) -> tuple[str, ...]:
        """What it found, failing or warned of (the detail itself for a check that keeps no list)."""
        found = self.findings or ((self.detail,) if self.outcome == FAILED else ())
        return found + self.warnings


def brief(reason: str) -> str:
    """A check's reason cut to its first finding, for a one-line summary: ``elf: 1 of 2 ELF
    files do not fit linux/arm64: /usr/bin/x is ...`` -> ``elf: /usr/bin/x is ...``."""
    return _MACHINE.sub("", _ONE_ELF.sub(r"\1", reason))


_ONE_ELF = re.compile(r"^(\w+: )1 of \d+ ELF files do not fit \S+: ")
_MACHINE = re.compile(r" \(EM_\w+\)")


def check_config(entry: Platform, config: ImageConfig) -> CheckResult:
    if config.platform == entry:
        return CheckResult(PASSED, f"config says {config.platform}, as the index entry does")
    raw = "/".join(x for x in (config.raw_os, config.raw_architecture, config.raw_variant) if x)
    return CheckResult(
        FAILED,
        f"the image config says {raw or 'nothing'} but the index entry says {entry}: "
        "the image was built for another platform or mislabelled when the index was made",
    )


_FLOAT = {40: {0x400: "hard-float", 0x200: "soft-float"}, 243: {0: "soft-float", 2: "single-float", 4: "double-float"}}
_GO_LEVEL = {"amd64": "GOAMD64", "arm": "GOARM"}


def _abi(machine: int, flags: int) -> str:
    mask, _ = ABI_BITS[machine]
    names = _FLOAT.get(machine, {})
    bits = flags & mask
    if machine == EM_ARM:
        return f"EABI{flags >> 24} {names.get(flags & 0x600, 'float ABI unmarked')}"
    return names.get(bits, f"ABI flags {bits:#x}")


def _selected(path: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if include and not any(fnmatch.fnmatchcase(path, pat) for pat in include):
        return False
    return not any(fnmatch.fnmatchcase(path, pat) for pat in exclude)


@dataclass(frozen=True)
class _Compat:
    """32-bit code that a 64-bit platform's CPUs run too: a warning, not an error."""

    identity: tuple[int, bool, int]  # ELF class, big endian, machine
    #: The platform the code is for: its own rules (loader, ABI, Go) still apply.
    own: Platform
    kind: str
    why: str


_COMPAT = {
    "amd64": _Compat((32, False, 3), Platform("linux", "386"), "32-bit x86 compat code", "which every x86-64 CPU runs"),
    "arm64": _Compat(
        (32, False, EM_ARM),
        Platform("linux", "arm", "v7"),
        "32-bit ARM compat code",
        "which needs AArch32: Apple M-series and newer Neoverse CPUs lack it",
    ),
}


@dataclass(frozen=True)
class ELFWarning:
    """A finding that passes the check (and fails it under ``strict``)."""

    path: str
    #: Findings of one group read as one sentence: compat code of one identity, or shared
    #: libraries of one ARM level.
    group: tuple[str, ...]
    #: What the file is, after "PATH is ": ``ELF32 LSB Intel 80386: 32-bit x86 compat ...``
    what: str
    #: The same of several files, after "N files under DIR are ".
    plural: str
    #: The noun of the count, when several are summed up: "files", "shared libraries".
    noun: str = "files"


@dataclass
class ELFFindings:
    """What the audit of one platform found."""

    count: int = 0
    #: A sentence for each problem, naming the path.
    errors: list[str] = field(default_factory=list)
    #: The files with a problem.
    failing: set[str] = field(default_factory=set)
    warnings: list[ELFWarning] = field(default_factory=list)
    #: How many files are another architecture's code that the platform runs (compat code).
    compat: int = 0


def elf_findings(
    platform: Platform, fs: Filesystem, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> ELFFindings:
    """What the ELF files of ``fs`` (within ``include``/``exclude``) are, against ``platform``.

    ``include`` restricts the audit to paths matching any of its globs; ``exclude`` leaves
    out known exceptions (firmware for another CPU, say).
    """
    spec = spec_for(platform)
    assert spec is not None
    found = ELFFindings()
    compat = _COMPAT.get(platform.architecture)
    files = [(p, n) for p, n in fs.elf_files() if _selected(p, include, exclude)]
    found.count = len(files)
    for path, node in files:
        errors: list[str] = []
        if node.elf_error:
            errors.append(f"{path}: {node.elf_error.removeprefix(path + ': ')}")
        else:
            info = node.elf
            assert info is not None
            identity = (info.elf_class, info.big_endian, info.machine)
            if identity == (spec.elf_class, spec.big_endian, spec.machine):
                errors.extend(_abi_problems(path, info, platform, fs, found))
            elif compat is not None and identity == compat.identity and _runs_as_compat(info):
                found.compat += 1
                what = f"{_identity(info)}: {compat.kind}, {compat.why}"
                found.warnings.append(ELFWarning(path, (compat.kind, _identity(info)), what, what))
                # Its own architecture's rules, but not its ARM level: AArch32 runs them all.
                errors.extend(_abi_problems(path, info, compat.own, fs, found, arm_level=False))
            else:
                errors.append(f"{path} is {info.description}, expected {spec.description}")
        found.errors.extend(errors)
        if errors:
            found.failing.add(path)
    return found


def _runs_as_compat(info: ELFInfo) -> bool:
    """32-bit ARM code runs on AArch32 only as EABI5 (arm64 kernels have no OABI)."""
    return info.machine != EM_ARM or info.flags >> 24 == 5


def _identity(info: ELFInfo) -> str:
    """``ELF32 LSB Intel 80386``, ``ELF32 LSB ARM EABI5 hard-float``."""
    plain = _MACHINE.sub("", info.identity)
    return f"{plain} {_abi(EM_ARM, info.flags)}" if info.machine == EM_ARM else plain


def _abi_problems(
    path: str, info: ELFInfo, platform: Platform, fs: Filesystem, found: ELFFindings, *, arm_level: bool = True
) -> list[str]:
    out: list[str] = []
    machine = info.machine
    if platform.architecture == "arm":
        max_arm = ARM_MAX_CPU_ARCH.get(platform.variant or "")
        if arm_level and max_arm is not None and info.arm_cpu_arch is not None and info.arm_cpu_arch > max_arm:
            level = info.arm_cpu_arch
            need = f"{ARM_CPU_ARCH.get(level, f'Tag_CPU_arch {level}')} (Tag_CPU_arch {level})"
            most = f"{platform} CPUs run at most {ARM_CPU_ARCH[max_arm]}"
            if info.library:
                # Libraries often carry code of a newer level that they run only after asking
                # the CPU (libgcrypt's ARMv8 crypto on Debian armhf), and the tests on the
                # platform's own CPU tell whether they do; an executable is taken at its word.
                tail = "but libraries often choose such code at run time, after checking the CPU"
                found.warnings.append(
                    ELFWarning(
                        path,
                        ("arm-library", str(level)),
                        f"a shared library marked {need}; {most}, {tail}",
                        f"marked {need}; {most}, {tail}",
                        "shared libraries",
                    )
                )
            else:
                out.append(f"{path} needs {need}; {most}")
        if info.flags >> 24 == 0 and info.go is None:
            out.append(f"{path} uses the old ARM ABI (OABI), which Linux kernels no longer run")
    if platform.architecture == "ppc64le" and info.flags & 3 == 1:
        out.append(f"{path} uses the ELFv1 ABI; ppc64le needs ELFv2")
    if platform.architecture in ("mips64le", "mips64") and info.flags & 0xF0000000 in (0x90000000, 0xA0000000):
        out.append(f"{path} needs a MIPS release 6 CPU; {platform} is MIPS64 release 2")
    out.extend(_go_problems(path, info, platform, arm_level))
    out.extend(_x86_level_problems(path, info, platform))
    if info.interp:
        loader = fs.lookup(info.interp)
        if loader is None:
            out.append(f"{path} is dynamically linked but its loader {info.interp} is not in the image")
        elif loader.elf is not None and machine in ABI_BITS and loader.elf.machine == machine:
            mask, what = ABI_BITS[machine]
            if (info.flags ^ loader.elf.flags) & mask:
                out.append(
                    f"{path} is {_abi(machine, info.flags)} but its loader {info.interp} is "
                    f"{_abi(machine, loader.elf.flags)}: the {what} differ"
                )
    return out


def _x86_level_problems(path: str, info: ELFInfo, platform: Platform) -> list[str]:
    """An x86-64 file marked for a level (GNU_PROPERTY_X86_ISA_1_NEEDED, as glibc built for
    x86-64-v3 marks itself) above the platform's variant: glibc's loader refuses it on the
    CPUs the platform promises (``linux/amd64`` is every x86-64 CPU, level 1)."""
    if platform.architecture != "amd64" or info.x86_level <= 1:
        return []
    want = (platform.variant or "v1").lstrip("v")
    if want.isdigit() and info.x86_level > int(want):
        return [
            f"{path} is marked x86-64-v{info.x86_level} (GNU_PROPERTY_X86_ISA_1_NEEDED): it does not load on the "
            f"level-{want} CPUs {platform} promises; build for the variant, or name the platform "
            f"linux/amd64/v{info.x86_level}"
        ]
    return []


def _go_problems(path: str, info: ELFInfo, platform: Platform, level_matters: bool = True) -> list[str]:
    go = info.go_settings
    if not go:
        return []
    out = []
    goarch = go.get("GOARCH")
    if goarch and goarch != platform.architecture:
        out.append(f"{path} is a Go binary built with GOARCH={goarch}, not {platform.architecture}")
    level_key = _GO_LEVEL.get(platform.architecture)
    level = go.get(level_key or "")
    if level_matters and level_key and level:
        want = (platform.variant or ("v7" if platform.architecture == "arm" else "v1")).lstrip("v")
        have = level.split(",")[0].lstrip("v")
        if have.isdigit() and want.isdigit() and int(have) > int(want):
            out.append(f"{path} is a Go binary built with {level_key}={level}; {platform} CPUs are level {want}")
    return out


def warning_sentences(warnings: Sequence[ELFWarning]) -> list[str]:
    """One sentence per group of warnings and directory: ``272 files under /usr/lib32 are
    ELF32 LSB Intel 80386: ...``, or ``/usr/lib32/libc.so.6 is ...`` for a file alone; at
    most :data:`MAX_LISTED`, then how many more."""
    groups: dict[tuple[str, ...], list[ELFWarning]] = {}
    for w in warnings:
        groups.setdefault(w.group, []).append(w)
    # Within a group, a directory takes in the files of the directories under it.
    found: list[tuple[str, str, list[ELFWarning]]] = []  # first path, directory, warnings
    for members in groups.values():
        roots: list[str] = []
        for parent in sorted({posixpath.dirname(w.path) for w in members}):
            if not any(_under(parent, root) for root in roots):
                roots.append(parent)
        by_root: dict[str, list[ELFWarning]] = {}
        for w in sorted(members, key=lambda w: w.path):
            parent = posixpath.dirname(w.path)
            by_root.setdefault(next(r for r in roots if _under(parent, r)), []).append(w)
        found.extend((ws[0].path, root, ws) for root, ws in by_root.items())
    out = []
    for _, root, ws in sorted(found, key=lambda f: f[0]):
        w = ws[0]
        out.append(f"{w.path} is {w.what}" if len(ws) == 1 else f"{len(ws)} {w.noun} under {root} are {w.plural}")
    if len(out) > MAX_LISTED:
        rest = sum(len(ws) for _, _, ws in sorted(found, key=lambda f: f[0])[MAX_LISTED - 1 :])
        out[MAX_LISTED - 1 :] = [f"and {len(out) - MAX_LISTED + 1} more such findings, of {rest} files"]
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def check_elf(
    platform: Platform,
    fs: Filesystem,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    *,
    strict: bool = False,
) -> CheckResult:
    """The ``elf`` check. Problems fail it; warnings (32-bit compat code, shared libraries
    above the ARM variant) pass it and are listed in the result's ``warnings``, or fail it
    too with ``strict``."""
    spec = spec_for(platform)
    if spec is None:
        return CheckResult(SKIPPED, f"no ELF rules for {platform}")
    found = elf_findings(platform, fs, include, exclude)
    # A glob that selects nothing narrows the audit by mistake (a typo, a relative path):
    # it must not pass as "no ELF files", nor hide behind another glob that matches.
    everything = fs.elf_files()
    fix = "paths in the image are absolute (/usr/bin/...); fix the glob, or leave it out to audit every file"
    if everything:
        for glob in include:
            if not any(fnmatch.fnmatchcase(path, glob) for path, _ in everything):
                return CheckResult(
                    FAILED, f"--elf-include {glob!r} matches no ELF file of the {len(everything)} in this image: {fix}"
                )
    if found.count == 0 and everything:
        globs = " ".join(f"--elf-exclude {g!r}" for g in exclude)
        return CheckResult(
            FAILED, f"{globs} leaves none of the {len(everything)} ELF files in this image to audit: {fix}"
        )
    if found.count == 0:
        return CheckResult(SKIPPED, "no ELF files in the image", skip=NO_ELF_FILES)
    warned = {w.path for w in found.warnings}
    sentences = warning_sentences(found.warnings)

    def unfit(failing: int, listed: list[str], after: str) -> str:
        more = len(listed) - MAX_LISTED
        tail = f"; and {more} more" if more > 0 else ""
        return (
            f"{failing} of {found.count} ELF files do not fit {platform}: "
            + "; ".join(listed[:MAX_LISTED])
            + tail
            + after
        )

    if strict and warned:
        listed = found.errors + sentences
        return CheckResult(
            FAILED, unfit(len(found.failing | warned), listed, " (warnings fail the check under --strict-elf)")
        )
    note = f"; {_files(len(warned))} {'passes' if len(warned) == 1 else 'pass'} with a warning" if warned else ""
    if found.errors:
        return CheckResult(
            FAILED,
            unfit(len(found.failing), found.errors, note),
            warnings=tuple(sentences),
            findings=_clean(tuple(found.errors)),
        )
    what = spec.description + (_arm_levels(fs) if platform.architecture == "arm" else "")
    if found.compat == found.count:
        files = f"{_elf_files(found.count)}, all 32-bit compat code"
    elif found.compat:
        files = f"{found.count} ELF files: {found.count - found.compat} {what}, {found.compat} 32-bit compat code"
    elif found.count == 1:
        files = f"1 ELF file {what}"
    else:
        files = f"{found.count} ELF files, all {what}"
    return CheckResult(PASSED, files + note, warnings=tuple(sentences))


def _elf_files(n: int) -> str:
    return "1 ELF file" if n == 1 else f"{n} ELF files"


def _files(n: int) -> str:
    return "1 file" if n == 1 else f"{n} files"


def _arm_levels(fs: Filesystem) -> str:
    levels = sorted({n.elf.arm_cpu_arch for _, n in fs.elf_files() if n.elf and n.elf.arm_cpu_arch is not None})
    return " (" + ", ".join(ARM_CPU_ARCH.get(v, str(v)) for v in levels) + ")" if levels else ""


def _own_files(
    platform: Platform, fs: Filesystem, include: Sequence[str], exclude: Sequence[str], *, compat: bool
) -> list[tuple[str, Node]]:
    """The selected ELF files that are the platform's own code (and its compat code, with
    ``compat``): what its loader and kernel must take. Other files are the elf check's."""
    spec = spec_for(platform)
    assert spec is not None
    own = {(spec.elf_class, spec.big_endian, spec.machine)}
    if compat and platform.architecture in _COMPAT:
        own.add(_COMPAT[platform.architecture].identity)
    return [
        (p, n)
        for p, n in fs.elf_files()
        if n.elf is not None
        and (n.elf.elf_class, n.elf.big_endian, n.elf.machine) in own
        and _selected(p, include, exclude)
    ]


def check_libs(
    platform: Platform,
    fs: Filesystem,
    env: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> CheckResult:
    """The ``libs`` check: every library each dynamic ELF file needs is found as the loader
    finds it (see :mod:`harness.loader`), and defines every symbol version the file needs.

    Executables are loaded as they start; a library is loaded on its own too, as
    ``ld.so --list`` loads it, and a need of one that an executable's search meets (its
    RPATH, say) is met. ``env`` is the image config's Env (``LD_LIBRARY_PATH``).
    """
    if spec_for(platform) is None:
        return CheckResult(SKIPPED, f"no ELF rules for {platform}")
    files = [
        (p, n.elf, n.elf.dynamic)
        for p, n in _own_files(platform, fs, include, exclude, compat=True)
        if n.elf is not None and n.elf.dynamic is not None
    ]
    unread = [(p, dyn.unread) for p, _, dyn in files if dyn.unread]
    resolver = Resolver(fs, env)
    linked = [(p, info) for p, info, dyn in files if not dyn.unread and (dyn.needed or dyn.verneed)]
    # Code with no loader of its kind in the image (32-bit libraries without their libc,
    # say) is loaded by nothing there: its needs are not judged, and the warning says so.
    loadable = {p: resolver.loader_for(info) is not None for p, info in linked}
    roots = [(p, info) for p, info in linked if loadable[p]]
    orphans = sorted({_MACHINE.sub("", info.identity) for p, info in linked if not loadable[p]})
    warnings = tuple(f"{p}: its needs were not checked: {why}" for p, why in unread[:MAX_LISTED])
    if len(unread) > MAX_LISTED:
        warnings += (f"and {len(unread) - MAX_LISTED} more files whose needs were not checked",)
    if orphans:
        count = len(linked) - len(roots)
        warnings += (
            f"{_files(count)} of {', '.join(orphans)} code: the image has no loader of that kind, so nothing in it "
            "can load them, and their needs were not checked",
        )
    if not roots:
        if unread or orphans:
            return CheckResult(SKIPPED, "no dynamic ELF file whose needs could be checked", warnings=_clean(warnings))
        return CheckResult(SKIPPED, "no dynamically linked ELF files in the image", skip=NO_DYNAMIC)
    missing: dict[tuple[str, str], tuple[Missing, Flavor]] = {}
    from_executables: set[tuple[str, str]] = set()
    met: set[tuple[str, str]] = set()
    versions: dict[tuple[str, str, str], VersionProblem] = {}
    libraries: set[str] = set()
    # Executables first: what they load, in their search context, is how those libraries run.
    for path, info in sorted(roots, key=lambda r: r[1].library):
        closure = resolver.closure(path)
        met |= closure.met
        libraries.update(lib.real for lib in closure.loaded)
        for m in closure.missing:
            missing.setdefault((m.needer, m.name), (m, Flavor.of(info)))
            if not info.library:
                from_executables.add((m.needer, m.name))
        for v in closure.versions:
            versions.setdefault((v.needer, v.version, v.provider), v)
    # A library's need that some executable's search meets (its RPATH, say) is met.
    unmet = [(m, flavor) for key, (m, flavor) in missing.items() if key in from_executables or key not in met]
    problems = _missing_sentences(unmet, resolver) + [_version_sentence(v) for v in versions.values()]
    needers = {m.needer for m, _ in unmet} | {v.needer for v in versions.values()}
    if problems:
        more = len(problems) - MAX_LISTED
        return CheckResult(
            FAILED,
            _clean(
                (
                    f"{len(needers)} of {len(roots)} dynamic ELF files cannot load: "
                    + "; ".join(problems[:MAX_LISTED])
                    + (f"; and {more} more" if more > 0 else ""),
                )
            )[0],
            warnings=_clean(warnings),
            findings=_clean(tuple(problems)),
        )
    return CheckResult(
        PASSED,
        f"{len(roots)} dynamic ELF files: every library they need is found, as the loader searches "
        f"({len(libraries)} libraries), and defines every symbol version they need",
        warnings=_clean(warnings),
    )


def _clean(texts: tuple[str, ...]) -> tuple[str, ...]:
    """Sentences that any report can write: a name's bytes that are not UTF-8 (kept in
    paths as surrogates) shown as escapes."""

    def one(text: str) -> str:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate no decoding made
            return text.encode("utf-8", "backslashreplace").decode("utf-8")

    return tuple(one(t) for t in texts)


def _missing_sentences(unmet: list[tuple[Missing, Flavor]], resolver: Resolver) -> list[str]:
    """One sentence per library not found in one search: ``/usr/bin/openssl needs
    libssl.so.3: not in /lib/aarch64-linux-gnu, ... (and 3 more files need it there)``."""
    groups: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[tuple[Missing, Flavor]]] = {}
    for m, flavor in unmet:
        groups.setdefault((m.name, m.looked, m.skipped), []).append((m, flavor))
    out = []
    for (name, looked, skipped), members in sorted(groups.items(), key=lambda g: sorted(m.needer for m, _ in g[1])[0]):
        needers = sorted(m.needer for m, _ in members)
        text = f"{needers[0]} needs {name}: not in {', '.join(looked) or 'any directory'}"
        if skipped:
            text += f" (the loader skips {'; '.join(skipped)})"
        hint = resolver.hint(members[0][0], members[0][1])
        if hint:
            text += f" ({hint})"
        if len(needers) > 1:
            shown = ", ".join(needers[1:4]) + (", ..." if len(needers) > 4 else "")
            text += f", nor {len(needers) - 1} more {'file' if len(needers) == 2 else 'files'} that need it ({shown})"
        out.append(text)
    return out


def _version_sentence(v: VersionProblem) -> str:
    have = f"the newest it defines is {v.newest}" if v.newest else "it defines no version of that kind"
    at = v.provider if posixpath.basename(v.provider) == v.library else f"{v.library} ({v.provider})"
    return f"{v.needer} needs version {v.version} of {at}: {have}"


def _kib(n: int) -> str:
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} bytes"


def check_pages(
    platform: Platform,
    fs: Filesystem,
    page_size: int | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> CheckResult:
    """The ``pages`` check: the largest page size every ELF file of the platform runs on,
    its smallest PT_LOAD alignment (a kernel with larger pages refuses the file). With
    ``page_size`` (``--page-size``), a file aligned for less fails the platform; without,
    the figure is reported. Compat code is left out: it runs only on kernels with AArch32
    or 32-bit x86 support, whose own page size rules it."""
    if spec_for(platform) is None:
        return CheckResult(SKIPPED, f"no ELF rules for {platform}")
    aligned = [
        (p, n.elf.load_align)
        for p, n in _own_files(platform, fs, include, exclude, compat=False)
        if n.elf and n.elf.load_align
    ]
    if not aligned:
        return CheckResult(SKIPPED, "no ELF files with loadable segments in the image", skip=NO_ELF_FILES)
    smallest = min(a for _, a in aligned)
    small = sorted(p for p, a in aligned if a == smallest)
    listed = ", ".join(small[:MAX_LISTED]) + (f" and {len(small) - MAX_LISTED} more" if len(small) > MAX_LISTED else "")
    if page_size is not None:
        short = [f"{p} (PT_LOAD aligned to {_kib(a)})" for p, a in sorted(aligned) if a < page_size]
        if short:
            shown = "; ".join(short[:MAX_LISTED])
            more = len(short) - MAX_LISTED
            return CheckResult(
                FAILED,
                f"{len(short)} of {len(aligned)} ELF files cannot run on a kernel with {_kib(page_size)} pages "
                f"(--page-size): {shown}"
                + (f"; and {more} more" if more > 0 else "")
                + "; link them with -z max-page-size="
                + str(page_size),
                findings=_clean(tuple(short)),
            )
        return CheckResult(
            PASSED, f"{len(aligned)} ELF files, all aligned for {_kib(page_size)} pages or larger (--page-size)"
        )
    largest = max(page_sizes(platform))
    if smallest >= largest or len(small) == len(aligned):
        return CheckResult(PASSED, f"{len(aligned)} ELF files run on pages up to {_kib(smallest)}")
    return CheckResult(
        PASSED,
        f"{len(aligned)} ELF files run on pages up to {_kib(smallest)}, set by {listed} "
        f"(the others up to {_kib(min(a for _, a in aligned if a > smallest))}); "
        f"{platform} kernels may have pages up to {_kib(largest)}: --page-size fails the platform on it",
    )


def check_uname(platform: Platform, host: Platform, emulated: bool, printed: str) -> CheckResult:
    expected = expected_uname(platform, host, emulated)
    how = "under qemu" if emulated else f"natively on {host}"
    if printed in expected:
        return CheckResult(PASSED, f"uname -m says {printed} ({how})")
    want = " or ".join(expected) or "?"
    return CheckResult(FAILED, f"uname -m says {printed!r}, expected {want} for {platform} {how}")


# --- the table of built-in checks ----------------------------------------------------------
class CheckContext(Protocol):
    """What a built-in check may ask of the run it is part of (:class:`harness.Harness` is one)."""

    elf_include: tuple[str, ...]
    elf_exclude: tuple[str, ...]
    strict_elf: bool

    def page_size(self, platform: Platform) -> int | None:
        """The page size ``--page-size`` names for ``platform`` (None: report only)."""
        ...

    def config(self, target: Target) -> ImageConfig: ...

    def filesystem(self, target: Target) -> Filesystem: ...

    def which(self, target: Target, name: str) -> str | None: ...

    def run(self, target: Target, cmd: Sequence[str], *, alone: bool = False) -> CommandResult:
        """``cmd`` in ``target``'s shared container; ``alone``: with no test's command beside
        it there, where a check's would count in the test's time (a check runs ahead of its
        item, beside the platform's tests)."""
        ...

    def host_platform(self, platform: Platform) -> Platform:
        """The platform of the engine that runs ``platform``."""
        ...

    def calibrate(self, platform: Platform, seconds: float) -> None:
        """The time of one short command on ``platform``: what its timeouts scale by."""
        ...


@dataclass(frozen=True)
class BuiltinCheck:
    """One built-in check: it runs on every tested platform of every image, whatever the
    user's tests, and has a column in every output and a place in the gate's rules."""

    name: str
    run: Callable[[CheckContext, Target], CheckResult]
    #: It runs containers: on a platform this host cannot run, it is skipped (failed under
    #: --strict-platforms) without being called.
    needs_engine: bool
    #: What a pass proves, in one line (the HTML page's column titles show it).
    about: str
    #: The ``skip`` codes with which a skip still lets the gate pass the platform.
    skip_allowed: tuple[str, ...] = ()
    #: Its result is a function of the platform's bytes and the settings alone, so it is
    #: kept on disk by manifest digest and a second run of the same digest reads it back.
    cached: bool = False


def _config(ctx: CheckContext, target: Target) -> CheckResult:
    return check_config(target.platform, ctx.config(target))


def _elf(ctx: CheckContext, target: Target) -> CheckResult:
    fs = ctx.filesystem(target)
    return check_elf(target.platform, fs, ctx.elf_include, ctx.elf_exclude, strict=ctx.strict_elf)


def _libs(ctx: CheckContext, target: Target) -> CheckResult:
    env = ctx.config(target).env
    return check_libs(target.platform, ctx.filesystem(target), env, ctx.elf_include, ctx.elf_exclude)


def _pages(ctx: CheckContext, target: Target) -> CheckResult:
    page = ctx.page_size(target.platform)
    return check_pages(target.platform, ctx.filesystem(target), page, ctx.elf_include, ctx.elf_exclude)


def run_again_if_gone(ctx: CheckContext, target: Target, cmd: Sequence[str]) -> CommandResult:
    """A check's command in ``target``'s shared container, alone there. A container that
    stopped under it (a test of the platform, running beside the check, killed it) gave the
    command no run: it runs once more, in the fresh container that the next command gets.
    A second stop is the check's to report."""
    from .container import ContainerGone

    try:
        return ctx.run(target, cmd, alone=True)
    except ContainerGone:
        return ctx.run(target, cmd, alone=True)


def _uname(ctx: CheckContext, target: Target) -> CheckResult:
    uname = ctx.which(target, "uname")
    if uname is None:
        return CheckResult(SKIPPED, "the image has no uname on its PATH", skip=NO_UNAME)
    try:
        result = run_again_if_gone(ctx, target, [uname, "-m"])
    except MultiarchError as exc:  # the engine failed, the command timed out, the container died
        return CheckResult(FAILED, str(exc))
    if result.exit_code != 0:
        why = (result.stderr or result.stdout).strip()[:300]
        if result.exit_code == 132 and target.mode.emulated:
            cpu = dict(target.mode.env).get("QEMU_CPU", "QEMU's default")
            why += f" (SIGILL: the image needs instructions the {target.platform} CPU ({cpu}) lacks)"
        return CheckResult(FAILED, f"`uname -m` exited {result.exit_code}: {why}", result.duration_s)
    ctx.calibrate(target.platform, result.duration_s)
    host = ctx.host_platform(target.platform)
    verdict = check_uname(target.platform, host, target.mode.emulated, result.stdout.strip())
    return CheckResult(verdict.outcome, verdict.detail, command_s=result.own_s)


#: Every built-in check, in the order of the report's columns. Adding one is a function
#: like those above and an entry here (and its line in the README's "Built-in checks").
BUILTIN_CHECKS: list[BuiltinCheck] = [
    BuiltinCheck("config", _config, False, "the image config names the platform its index entry does"),
    BuiltinCheck(
        "elf",
        _elf,
        False,
        "every ELF file is code this platform runs: machine, class, ABI, loader, ARM level, Go settings",
        (NO_ELF_FILES,),
        cached=True,
    ),
    BuiltinCheck(
        "libs",
        _libs,
        False,
        "every library each dynamic ELF file needs is found as the loader searches, with the symbol versions it needs",
        (NO_DYNAMIC,),
        cached=True,
    ),
    BuiltinCheck(
        "pages",
        _pages,
        False,
        "every ELF file's PT_LOAD alignment allows the page size named (--page-size); else the largest is reported",
        (NO_ELF_FILES,),
        cached=True,
    ),
    BuiltinCheck(
        "uname", _uname, True, "`uname -m` in a running container prints what this platform's kernel says", (NO_UNAME,)
    ),
]


#: Bump when a cached result's meaning changes in a way the code hash does not catch.
RESULTS_FORMAT = 2
_CODE: str | None = None


def _code_hash() -> str:
    """A hash of the harness's own code: a result is reused only by the code that made it."""
    global _CODE
    if _CODE is None:
        digest = hashlib.sha256()
        for path in sorted(Path(__file__).parent.glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        _CODE = digest.hexdigest()
    return _CODE


def results_key(check: str, platform: str, digest: str, settings: dict[str, object]) -> str:
    """The key of one cached check result: the check, the platform's manifest digest (which
    names its config and layers), every setting the check reads, and the code."""
    doc = [RESULTS_FORMAT, _code_hash(), check, platform, digest, sorted(settings.items())]
    return hashlib.sha256(json.dumps(doc, default=list).encode()).hexdigest()


def read_result(cache: Path, key: str) -> CheckResult | None:
    try:
        doc = json.loads((cache / f"{key}.json").read_text())
        return CheckResult(
            doc["outcome"],
            doc["detail"],
            warnings=tuple(doc["warnings"]),
            skip=doc["skip"],
            findings=tuple(doc["findings"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not there, or damaged: worked out again


def write_result(cache: Path, key: str, result: CheckResult) -> None:
    doc = {
        "outcome": result.outcome,
        "detail": result.detail,
        "warnings": list(result.warnings),
        "skip": result.skip,
        "findings": list(result.findings),
    }
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=".partial-")
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, cache / f"{key}.json")
    except OSError:
        pass  # a cache that cannot be written only costs the next run the work


def builtin_checks() -> tuple[BuiltinCheck, ...]:
    return tuple(BUILTIN_CHECKS)


def check_names() -> tuple[str, ...]:
    """The built-in checks' names, in column order."""
    return tuple(check.name for check in BUILTIN_CHECKS)


def builtin(name: str) -> BuiltinCheck:
    for check in BUILTIN_CHECKS:
        if check.name == name:
            return check
    raise KeyError(f"no built-in check {name!r} (there are: {', '.join(check_names())})")
