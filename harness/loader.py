"""Where the dynamic loader finds each library a file needs, worked out from the image's
bytes alone, the way glibc's ``ld.so`` (or musl's) searches when the file starts.

For one root file (an executable, or a library loaded on its own as ``ld.so --list``
loads it), :meth:`Resolver.closure` loads its needs breadth first, as the loader does:

- a name with a slash is that path (``$ORIGIN``, ``$LIB``, ``$PLATFORM`` expanded);
- a name matching an object already loaded (the name it was loaded by, or its
  ``DT_SONAME``) is that object, the loader itself included;
- otherwise, glibc searches: the ``DT_RPATH`` of the object that needs it and of each
  object up the chain that loaded it (only when the needing object has no
  ``DT_RUNPATH``), ``LD_LIBRARY_PATH`` from the image config, the object's own
  ``DT_RUNPATH``, ``/etc/ld.so.cache``, then the loader's system directories (for a
  ``DF_1_NODEFLIB`` object, only the cache's entries outside them). ``$ORIGIN``, ``$LIB``
  and ``$PLATFORM`` are expanded. musl searches ``LD_LIBRARY_PATH``, the run path of each
  object up the chain, then ``/etc/ld-musl-ARCH.path`` (or ``/lib:/usr/local/lib:/usr/lib``);
  it answers ``libc.*``, ``libm.*``, ``libpthread.*``, ``librt.*``, ``libdl.*``,
  ``libutil.*`` and ``libxnet.*`` itself, and matches loaded objects by the name they were
  found under, never by ``DT_SONAME``;
- in each directory, the name is followed through symlinks inside the image. glibc passes
  over a file of another class or machine (and, on ARM, an EABI5 file of the other float
  ABI) and goes on; a file that is no ELF file, or of the other byte order, stops it with
  an error. musl takes the first file of the name and fails if it cannot load it;
- a file found under a second name is the object already loaded.

The loader never reads ``/etc/ld.so.conf``: ``ldconfig`` does, and writes the cache. So the
directories it names count only through a cache; a library found only there is reported
with the fix (run ``ldconfig``). A loader's system directories are where it lives: glibc
built for Debian's multiarch layout searches ``/lib/TRIPLET``, ``/usr/lib/TRIPLET``,
``/lib``, ``/usr/lib``; for ``lib64`` (Fedora, RHEL), ``/lib64`` and ``/usr/lib64``.

What it cannot see: ``dlopen`` by a name computed at run time, ``LD_LIBRARY_PATH`` or
``LD_PRELOAD`` set by a wrapper script, glibc-hwcaps and legacy hwcap subdirectories
(chosen by the CPU), and a ``$PLATFORM`` that depends on the CPU (taken here as the
platform's usual value).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import struct
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .elf import ABI_BITS, EM_ARM, ELFInfo
from .layers import Filesystem, Node

#: Debian's multiarch triplet of each (class, big endian, machine): where a loader that
#: cannot be found would have looked.
TRIPLETS = {
    (64, False, 62): "x86_64-linux-gnu",
    (32, False, 3): "i386-linux-gnu",
    (64, False, 183): "aarch64-linux-gnu",
    (32, False, EM_ARM): "arm-linux-gnueabihf",
    (64, False, 21): "powerpc64le-linux-gnu",
    (64, True, 21): "powerpc64-linux-gnu",
    (64, True, 22): "s390x-linux-gnu",
    (64, False, 243): "riscv64-linux-gnu",
    (64, False, 8): "mips64el-linux-gnuabi64",
    (64, True, 8): "mips64-linux-gnuabi64",
    (64, False, 258): "loongarch64-linux-gnu",
}
#: ``$PLATFORM`` (AT_PLATFORM) as the kernel usually sets it, per (class, machine).
PLATFORMS = {(64, 62): "x86_64", (32, 3): "i686", (64, 183): "aarch64", (32, EM_ARM): "v7l", (64, 243): "riscv64"}
MUSL_DEFAULT = ("/lib", "/usr/local/lib", "/usr/lib")
CACHE_MAGIC = b"glibc-ld.so.cache1.1"
OLD_CACHE_MAGIC = b"ld.so-1.7.0"
#: How many files ld.so.conf and its includes may add up to.
MAX_CONF_FILES = 256
_TOKEN = re.compile(r"\$(\{(\w+)\}|(\w+))")
_EM = re.compile(r" \(EM_\w+\)")
_ARM_FLOAT, _ARM_HARD, _ARM_SOFT = 0x600, 0x400, 0x200
#: Names musl's loader answers with itself, file or no file (load_library's reserved names).
_MUSL_OWN = re.compile(r"lib(c|pthread|rt|m|dl|util|xnet)\..*")
_LOADER_NAME = re.compile(r"ld(-linux)?[-\w.]*\.so(\.\d+)*|ld64\.so\.\d+|ld\.so\.\d+")


@dataclass(frozen=True)
class Flavor:
    """What the loader requires of every object it loads together: class, byte order,
    machine and the ABI bits of e_flags (ARM float ABI, MIPS ABI, ...)."""

    elf_class: int
    big_endian: bool
    machine: int
    abi: int

    @classmethod
    def of(cls, info: ELFInfo) -> Flavor:
        mask = ABI_BITS.get(info.machine, (0, ""))[0]
        return cls(info.elf_class, info.big_endian, info.machine, info.flags & mask)

    def judge(self, node: Node) -> str:
        """What glibc's loader does with a file of the needed name, of a loader of this
        flavor (open_verify): ``ok``; ``skip`` (another class or machine, or on ARM an EABI5
        file of the other float ABI: the search goes on); else why it stops there with an
        error (no ELF file, the other byte order)."""
        info = node.elf
        if info is None:
            return "it is no ELF file (the loader stops: invalid ELF header)"
        if info.elf_class != self.elf_class:
            return "skip"
        if info.big_endian != self.big_endian:
            order = "big" if self.big_endian else "little"
            return f"its byte order is not {order}-endian (the loader stops: ELF file data encoding not {order}-endian)"
        if info.machine != self.machine:
            return "skip"
        if info.machine == EM_ARM:
            # Measured with Debian 12's armhf loader: a soft-float EABI5 file is passed over;
            # one with neither float flag, or of another EABI version, is loaded.
            mine = self.abi & _ARM_FLOAT
            other = {_ARM_HARD: _ARM_SOFT, _ARM_SOFT: _ARM_HARD}.get(mine)
            eabi5 = info.flags >> 24 == 5
            return "skip" if eabi5 and other is not None and info.flags & _ARM_FLOAT == other else "ok"
        return "ok" if Flavor.of(info).abi == self.abi else "skip"


@dataclass(frozen=True)
class Loader:
    """The loader that starts a file: its path (PT_INTERP, or the image's loader of the
    file's kind for a library), and where it looks by default."""

    path: str
    real: str | None
    musl: bool
    soname: str | None
    system_dirs: tuple[str, ...]
    #: What ``$LIB`` and ``$PLATFORM`` expand to.
    lib: str
    platform: str | None


@dataclass
class _Object:
    real: str
    path: str
    names: set[str]
    info: ELFInfo
    loader: _Object | None  # the object whose need loaded it

    @property
    def origin(self) -> str:
        return posixpath.dirname(self.path)


@dataclass(frozen=True)
class Loaded:
    """A library of a closure: the name it was first needed by, where it was found (as
    ``ld.so --list`` prints it) and the file that is."""

    name: str
    path: str
    real: str
    needer: str


@dataclass(frozen=True)
class Missing:
    """A need no searched directory meets."""

    name: str
    needer: str
    looked: tuple[str, ...]
    #: Files of that name the loader skipped: "PATH: ELF64 LSB x86-64".
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class VersionProblem:
    needer: str
    version: str
    library: str  # the name it is needed by (vn_file)
    provider: str  # the file that name resolved to
    newest: str | None  # the newest version of that kind the provider defines


@dataclass
class Closure:
    root: str
    loader: Loader | None
    loaded: list[Loaded] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    versions: list[VersionProblem] = field(default_factory=list)
    #: (needer, name) of every need that was met.
    met: set[tuple[str, str]] = field(default_factory=set)

    def resolution(self) -> dict[str, str | None]:
        """Name -> the file it resolved to (None: not found), as ``ld.so --list`` prints
        them; the loader itself is left out."""
        out: dict[str, str | None] = {lib.name: lib.real for lib in self.loaded}
        out.update((m.name, None) for m in self.missing if m.name not in out)
        return out


class Resolver:
    """Library resolution over one platform's flattened filesystem."""

    def __init__(self, fs: Filesystem, env: Iterable[str] = ()) -> None:
        self.fs = fs
        values = dict(item.partition("=")[::2] for item in env)
        self.env_path = tuple(d for d in re.split("[:;]", values.get("LD_LIBRARY_PATH", "")) if d)
        self.cache = _read_cache(fs)
        self._loaders: dict[tuple[str | None, Flavor], Loader | None] = {}
        self._search: dict[tuple[str, tuple[str, ...], Flavor], tuple[str, str] | list[str]] = {}
        self._conf_dirs: tuple[str, ...] | None = None
        self._by_name: dict[str, list[str]] | None = None
        self._real: dict[str, str | None] = {}
        self._dir_lists: dict[tuple[object, ...], tuple[str, ...]] = {}

    def resolve(self, path: str) -> str | None:
        """:meth:`Filesystem.resolve`, remembered: the same names are looked up for every root."""
        if path not in self._real:
            self._real[path] = self.fs.resolve(path)
        return self._real[path]

    # --- the loader ------------------------------------------------------------------------
    def loader_for(self, info: ELFInfo) -> Loader | None:
        """The loader that runs a file: its own PT_INTERP, else (a library) the loader the
        image's executables of its kind name most, else a file that is one."""
        flavor = Flavor.of(info)
        key = (info.interp, flavor)
        if key not in self._loaders:
            path = info.interp or self._flavor_loader(flavor)
            self._loaders[key] = self._make_loader(path, info) if path else None
        return self._loaders[key]

    def _flavor_loader(self, flavor: Flavor) -> str | None:
        named = Counter(
            n.elf.interp
            for _, n in self.fs.elf_files()
            if n.elf is not None and n.elf.interp and Flavor.of(n.elf) == flavor and self.fs.lookup(n.elf.interp)
        )
        if named:
            return named.most_common(1)[0][0]
        for path, n in self.fs.elf_files():
            dyn = n.elf.dynamic if n.elf else None
            if (
                n.elf is not None
                and dyn is not None
                and not n.elf.interp
                and dyn.soname
                and _LOADER_NAME.fullmatch(dyn.soname)
                and Flavor.of(n.elf) == flavor
            ):
                return path
        return None

    def _make_loader(self, path: str, info: ELFInfo) -> Loader:
        real = self.fs.resolve(path)
        node = self.fs.nodes.get(real) if real else None
        dyn = node.elf.dynamic if node is not None and node.elf is not None else None
        musl = "ld-musl-" in posixpath.basename(path)
        platform = PLATFORMS.get((info.elf_class, info.machine))
        if musl:
            arch = posixpath.basename(path).removeprefix("ld-musl-").split(".so", 1)[0]
            return Loader(path, real, True, dyn.soname if dyn else None, self._musl_dirs(arch), "lib", platform)
        if real is not None:
            rel = posixpath.dirname(real).removeprefix("/usr").strip("/")
        else:
            triplet = TRIPLETS.get((info.elf_class, info.big_endian, info.machine))
            rel = f"lib/{triplet}" if triplet else "lib"
        if rel in ("lib", "lib64"):
            dirs: tuple[str, ...] = (f"/{rel}", f"/usr/{rel}")
        else:
            dirs = (f"/{rel}", f"/usr/{rel}", "/lib", "/usr/lib")
        return Loader(path, real, False, dyn.soname if dyn else None, dirs, rel, platform)

    def _musl_dirs(self, arch: str) -> tuple[str, ...]:
        node = self.fs.lookup(f"/etc/ld-musl-{arch}.path")
        if node is None or node.data is None:
            return MUSL_DEFAULT
        return tuple(d for d in re.split(r"[:\n]", node.data.decode("utf-8", "replace")) if d.strip())

    # --- one closure -----------------------------------------------------------------------
    def closure(self, root: str) -> Closure:
        """The libraries ``root`` loads, as the loader loads them when it starts it."""
        real = self.resolve(root) or root
        node = self.fs.nodes.get(real)
        info = node.elf if node is not None else None
        if info is None or info.dynamic is None:
            return Closure(root, None)
        loader = self.loader_for(info)
        out = Closure(root, loader)
        musl = loader is not None and loader.musl
        rtld_node = self.fs.nodes.get(loader.real) if loader is not None and loader.real else None
        # What the loader accepts is the loader's own kind (its ARM float ABI, say).
        flavor = Flavor.of(rtld_node.elf if rtld_node is not None and rtld_node.elf is not None else info)
        main = _Object(real, root, {root}, info, None)
        if info.dynamic.soname and not musl:  # musl matches by the name searched for, never DT_SONAME
            main.names.add(info.dynamic.soname)
        objects = [main]
        # Each name and each file to the object that has it, first come first served, as the
        # loader's list of loaded objects answers them.
        by_name: dict[str, _Object] = {}
        by_real: dict[str, _Object] = {real: main}

        def named(obj: _Object, *names: str) -> None:
            obj.names.update(names)
            for n in names:
                by_name.setdefault(n, obj)

        named(main, *main.names)
        rtld = rtld_node.elf if rtld_node is not None else None
        if loader is not None and loader.real is not None and loader.real != real and rtld is not None:
            rtld_obj = _Object(loader.real, loader.path, set(), rtld, None)
            objects.append(rtld_obj)
            by_real[loader.real] = rtld_obj
            named(rtld_obj, loader.path, *([loader.soname] if loader.soname and not musl else []))
        queue = deque([main])
        while queue:
            obj = queue.popleft()
            dyn = obj.info.dynamic
            assert dyn is not None
            for name in dyn.needed:
                known = by_name.get(name)
                if known is not None:
                    if known.real:
                        out.met.add((obj.real, name))
                    continue  # loaded already, or not found before
                if musl and _MUSL_OWN.fullmatch(name):
                    out.met.add((obj.real, name))  # musl itself
                    continue
                found = self._find(name, obj, flavor, loader)
                if isinstance(found, list):
                    looked = self._looked(name, obj, loader)
                    out.missing.append(Missing(name, obj.real, looked, tuple(found)))
                    absent = _Object("", name, set(), obj.info, obj)  # "not found", once
                    objects.append(absent)
                    named(absent, name)
                    continue
                path, freal = found
                out.met.add((obj.real, name))
                same = by_real.get(freal)
                if same is not None:
                    named(same, name)
                    continue
                lib_node = self.fs.nodes[freal]
                assert lib_node.elf is not None
                new = _Object(freal, path, set(), lib_node.elf, obj)
                lib_dyn = lib_node.elf.dynamic
                named(new, name, *([lib_dyn.soname] if lib_dyn is not None and lib_dyn.soname and not musl else []))
                objects.append(new)
                by_real[freal] = new
                out.loaded.append(Loaded(name, path, freal, obj.real))
                if lib_dyn is not None and not lib_dyn.unread:
                    queue.append(new)
        if loader is None or not loader.musl:
            out.versions = _version_problems(objects, by_name)
        return out

    def _dir_list(self, obj: _Object, loader: Loader | None) -> tuple[str, ...]:
        """:meth:`_dirs`, remembered by what it depends on: most objects name no search path
        of their own nor have one up their chain, and share one list."""
        own = obj.info.dynamic
        chain: list[object] = [own.nodeflib if own is not None else False]
        link: _Object | None = obj
        while link is not None:
            dyn = link.info.dynamic
            if dyn is not None and (dyn.rpath or dyn.runpath):
                chain.append((link is obj, link.path, dyn.rpath, dyn.runpath))
            link = link.loader
        key = (loader, tuple(chain))
        if key not in self._dir_lists:
            self._dir_lists[key] = tuple(self._dirs(obj, loader))
        return self._dir_lists[key]

    def _dirs(self, obj: _Object, loader: Loader | None) -> list[str]:
        """The directories searched for a need of ``obj``, in order, with their tokens
        expanded; the cache is marked by an empty entry."""
        dyn = obj.info.dynamic
        assert dyn is not None
        dirs: list[str] = []
        if loader is not None and loader.musl:
            dirs += self.env_path
            chain: _Object | None = obj
            while chain is not None:
                cdyn = chain.info.dynamic
                dirs += self._expand(cdyn.runpath or cdyn.rpath if cdyn else None, chain, loader)
                chain = chain.loader
            return dirs + list(loader.system_dirs)
        if not dyn.runpath:
            chain = obj
            while chain is not None:
                cdyn = chain.info.dynamic
                if cdyn is not None and not cdyn.runpath:
                    dirs += self._expand(cdyn.rpath, chain, loader)
                chain = chain.loader
        dirs += self.env_path
        dirs += self._expand(dyn.runpath, obj, loader)
        dirs.append("")  # the cache (for a DF_1_NODEFLIB object, its entries outside the system directories)
        if not dyn.nodeflib:
            dirs += loader.system_dirs if loader is not None else ()
        return dirs

    def _expand(self, value: str | None, obj: _Object, loader: Loader | None) -> list[str]:
        known = {
            "ORIGIN": obj.origin,
            "LIB": loader.lib if loader else "lib",
            "PLATFORM": loader.platform if loader else None,
        }
        out = []
        for part in (value or "").split(":"):
            names = [m.group(2) or m.group(3) for m in _TOKEN.finditer(part)]
            if not part or any(known.get(n) is None for n in names):
                continue  # glibc leaves out a path with a token it cannot expand
            expanded = _TOKEN.sub(lambda m: known[m.group(2) or m.group(3)] or "", part)
            out.append(expanded if expanded.startswith("/") else "/" + expanded)
        return out

    def _find(self, name: str, obj: _Object, flavor: Flavor, loader: Loader | None) -> tuple[str, str] | list[str]:
        """(path as found, real path) of the library, or what stood in the way: the files of
        that name it passed over, or the one it stopped at."""
        musl = loader is not None and loader.musl
        if "/" in name:
            expanded = self._expand(name, obj, loader)  # glibc expands tokens in a path too
            if not expanded:
                return []
            path = expanded[0]
            return self._try([path], flavor, musl)
        dirs = self._dir_list(obj, loader)
        key = (name, dirs, flavor)
        if key not in self._search:
            candidates = []
            for d in dirs:
                if d:
                    candidates.append(posixpath.join(d, name))
                    continue
                # The cache; for a DF_1_NODEFLIB object only its entries outside the system directories.
                own = obj.info.dynamic
                nodeflib = own is not None and own.nodeflib
                system = set(loader.system_dirs) if loader is not None and nodeflib else set()
                candidates.extend(c for c in self.cache.get(name, ()) if posixpath.dirname(c) not in system)
            self._search[key] = self._try(candidates, flavor, musl)
        return self._search[key]

    def _try(self, candidates: Sequence[str], flavor: Flavor, musl: bool = False) -> tuple[str, str] | list[str]:
        skipped: list[str] = []
        seen: set[str] = set()
        for cand in candidates:
            real = self.resolve(cand)
            node = self.fs.nodes.get(real) if real else None
            if real is None or node is None or node.kind != "file":
                continue
            verdict = flavor.judge(node)
            if verdict == "ok":
                return posixpath.normpath(cand), real
            what = _EM.sub("", node.elf.identity) if node.elf is not None else "no ELF file"
            if musl:
                # musl takes the first file of the name and fails when it cannot map it.
                return [f"{cand}: {what}, which musl's loader takes and cannot load"]
            if verdict != "skip":
                return [*skipped, f"{cand}: {what}; {verdict}"]
            if real not in seen:  # one file under several names (merged /usr) is said once
                seen.add(real)
                skipped.append(f"{cand}: {what}")
        return skipped

    def _looked(self, name: str, obj: _Object, loader: Loader | None) -> tuple[str, ...]:
        if "/" in name:
            return tuple(self._expand(name, obj, loader)[:1])  # that path alone
        out: list[str] = []
        for d in self._dirs(obj, loader):
            entry = d or ("/etc/ld.so.cache" if self.cache else "")
            if entry and entry not in out:
                out.append(entry)
        return tuple(out)

    # --- why a library was not found -------------------------------------------------------
    def hint(self, missing: Missing, flavor: Flavor) -> str:
        """Where a file of the missing name is in the image after all, and the fix."""
        for path in self.by_name().get(missing.name, ()):
            node = self.fs.nodes.get(path)
            if node is None or node.elf is None or flavor.judge(node) != "ok":
                continue
            where = posixpath.dirname(path)
            if where in self.conf_dirs():
                if not self.fs.lookup("/etc/ld.so.cache"):
                    return (
                        f"{path} is in {where}, which /etc/ld.so.conf names, but the image has no "
                        "/etc/ld.so.cache (the loader reads only the cache): run ldconfig when building the image"
                    )
                return (
                    f"{path} is in {where}, which /etc/ld.so.conf names, but /etc/ld.so.cache does not list it: "
                    "run ldconfig after installing it"
                )
            return f"{path} has that name, in a directory the loader does not search"
        return ""

    def by_name(self) -> dict[str, list[str]]:
        if self._by_name is None:
            self._by_name = {}
            for path, n in self.fs.elf_files():
                if n.elf is not None:
                    self._by_name.setdefault(posixpath.basename(path), []).append(path)
            for path, n in self.fs.nodes.items():
                if n.kind == "symlink":
                    real = self.fs.resolve(path)
                    target = self.fs.nodes.get(real) if real else None
                    if target is not None and target.elf is not None:
                        self._by_name.setdefault(posixpath.basename(path), []).append(real or path)
        return self._by_name

    def conf_dirs(self) -> tuple[str, ...]:
        """The directories ``/etc/ld.so.conf`` and its includes name, as ldconfig reads them."""
        if self._conf_dirs is None:
            self._conf_dirs = tuple(dict.fromkeys(self._conf("/etc/ld.so.conf", set())))
        return self._conf_dirs

    def _conf(self, path: str, seen: set[str]) -> list[str]:
        """One configuration file's directories, its includes in place; each file is read
        once, so an include of itself (or a loop of them) ends."""
        real = self.resolve(path)
        node = self.fs.nodes.get(real) if real else None
        if real is None or node is None or node.data is None or real in seen or len(seen) >= MAX_CONF_FILES:
            return []
        seen.add(real)
        out: list[str] = []
        for line in node.data.decode("utf-8", "replace").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("include") and line[7:8].isspace():
                for pattern in line[8:].split():
                    pattern = pattern if pattern.startswith("/") else posixpath.join(posixpath.dirname(path), pattern)
                    for match in self._glob(pattern):
                        out += self._conf(match, seen)
            elif line and not line.startswith("hwcap"):
                out += [d.split("=", 1)[0].rstrip("/") or "/" for d in re.split(r"[\s:,]+", line) if d]
        return out

    def _glob(self, pattern: str) -> list[str]:
        """The paths of the image a glob names, matched in its own directory (ldconfig's
        ``glob``: the pattern's directory part is taken as it is)."""
        folder, _, name = pattern.rpartition("/")
        prefix = (folder or "") + "/"
        return sorted(
            p
            for p in self.fs.nodes
            if p.startswith(prefix) and "/" not in p[len(prefix) :] and fnmatch.fnmatchcase(p[len(prefix) :], name)
        )


def _version_problems(objects: list[_Object], by_name: dict[str, _Object]) -> list[VersionProblem]:
    out = []
    for obj in objects:
        dyn = obj.info.dynamic
        if not obj.real or dyn is None:
            continue
        for library, versions in dyn.verneed:
            provider = by_name.get(library)
            pdyn = provider.info.dynamic if provider is not None and provider.real else None
            if provider is None or pdyn is None or not pdyn.verdef:
                continue  # not found (reported as such), or it has no versions: glibc only warns
            for version, weak in versions:
                if not weak and version not in pdyn.verdef:
                    out.append(VersionProblem(obj.real, version, library, provider.real, newest(version, pdyn.verdef)))
    return out


def newest(version: str, defined: Iterable[str]) -> str | None:
    """The newest of ``defined`` of the same kind as ``version``: GLIBC_2.36 for GLIBC_2.38."""
    kind = _kind(version)
    same = [v for v in defined if _kind(v) == kind]
    return max(same, key=_version_key) if same else None


def _kind(version: str) -> str:
    return re.sub(r"[\d.]+$", "", version)


def _version_key(version: str) -> tuple[int, ...]:
    tail = version[len(_kind(version)) :]
    return tuple(int(x) for x in tail.split(".") if x.isdigit())


def _read_cache(fs: Filesystem) -> dict[str, list[str]]:
    """Name -> paths of ``/etc/ld.so.cache`` (glibc's format 1.1, alone or after the old
    format); {} when there is none or it cannot be read."""
    node: Node | None = fs.lookup("/etc/ld.so.cache")
    data = node.data if node is not None else None
    if not data:
        return {}
    at = data.find(CACHE_MAGIC)
    if at < 0:
        return {}
    out: dict[str, list[str]] = {}
    try:
        # Written in the image's byte order, which the flags byte says (2 little, 3 big;
        # glibc 2.33 and later); older caches leave it 0, and the count tells.
        order = data[at + 28] & 3
        nlibs = struct.unpack_from("<I", data, at + 20)[0]
        end = {2: "<", 3: ">"}.get(order, ">" if nlibs > 0xFFFFFF else "<")
        nlibs, _strings = struct.unpack_from(end + "II", data, at + 20)
        for i in range(min(nlibs, len(data) // 24)):
            _flags, key, value, _os, _hwcap = struct.unpack_from(end + "iIIIQ", data, at + 48 + 24 * i)
            # String offsets count from the header of this format.
            out.setdefault(_cstr(data, at + key), []).append(_cstr(data, at + value))
    except (struct.error, IndexError, ValueError):  # cut short or damaged: as if there were none
        return {}
    return out


def _cstr(data: bytes, at: int) -> str:
    end = data.index(b"\0", at)
    return data[at:end].decode("utf-8", "surrogateescape")
