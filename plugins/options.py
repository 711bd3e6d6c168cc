"""Every option of the plugin, declared once in OPTIONS: its flag, ini name, environment
variable, kind and default. The command line, the ini file, ``--help`` and the resolver are
all made from that table, read in one order: command line, then ini, then environment,
then default."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from harness.arch import PAGE_SIZES, page_sizes, spec_for
from harness.binfmt import qemu_cpu_models
from harness.layers import DEFAULT_MAX_LAYER_BYTES, MAX_LAYER_ENV
from harness.platform import Platform, PlatformError, check_known, format_list, parse_list
from harness.pool import FEEDS
from harness.reference import ImageReferenceError
from harness.release import attestation_kinds
from harness.sources import DEFAULT_SCRATCH_REGISTRY, SourceError, check_source_name

#: How a setting is written and read:
#: ``text``: one string;
#: ``list``: strings, repeatable on the command line, one per line in ini, comma-separated in the environment;
#: ``flag``: on/off, turned on by the bare flag; the ini file's bool; the environment's 1 or 0;
#: ``positive``: a number above zero;
#: ``bytes``: a whole number of bytes;
#: ``choice``: one of the option's choices.
Kind = Literal["text", "list", "flag", "positive", "bytes", "choice"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_INI_TYPE: dict[str, Literal["linelist", "bool"]] = {"list": "linelist", "flag": "bool"}
#: A flag's ini default is None, so that a file's false can be told from no entry.
_INI_DEFAULT: dict[str, Any] = {"list": [], "flag": None}
_INI_NOTE = {"list": "lines"}
_ENV_NOTE = {"list": "comma-separated", "flag": "1 or 0"}


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str  # "command line", "ini", "env NAME", "default"


@dataclass(frozen=True)
class Option:
    """One setting: everything the command line, the ini file, the environment, ``--help``
    and the README say about it."""

    flag: str
    #: The attribute of Options that holds the resolved value.
    field: str
    kind: Kind
    #: What it does, without its names or default: those are appended from the fields below.
    help: str
    ini: str | None = None
    env: str | None = None
    #: The value when no source gives one; the only place it is written.
    default: Any = None
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    #: Checks and shapes the parsed value into the Options field; its errors name the flag.
    convert: Callable[[Option, Setting], Any] | None = None

    def __post_init__(self) -> None:
        fits = {
            "text": self.default is None or isinstance(self.default, str),
            "list": isinstance(self.default, tuple),
            "flag": self.default is False,
            "positive": self.default is None or (isinstance(self.default, float) and self.default > 0),
            "bytes": isinstance(self.default, int) and self.default > 0,
            "choice": self.default in self.choices,
        }
        if not fits[self.kind]:
            raise TypeError(f"{self.flag}: default {self.default!r} is no {self.kind}")

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def shown_metavar(self) -> str | None:
        return "|".join(self.choices) if self.kind == "choice" else self.metavar

    @property
    def shown_default(self) -> str | None:
        """The default as help and README show it; None when there is none to show
        (nothing, an empty list, or off)."""
        if self.default is None or self.default is False or self.default == ():
            return None
        if self.kind == "bytes" and self.default >= 1 << 30:
            return f"{self.default} ({self.default / (1 << 30):g} GiB)"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)

    @property
    def ini_note(self) -> str | None:
        return _INI_NOTE.get(self.kind) if self.ini else None

    @property
    def shown_env_note(self) -> str | None:
        return _ENV_NOTE.get(self.kind) if self.env else None

    @property
    def help_text(self) -> str:
        """The help sentence, then what the table knows: repeatable, default, ini, env."""
        parts = [self.help]
        if self.kind == "list":
            parts.append("Repeatable")
        if self.shown_default is not None:
            parts.append(f"Default: {self.shown_default}")
        names = []
        if self.ini:
            names.append(f"ini: {self.ini}" + (f" ({self.ini_note})" if self.ini_note else ""))
        if self.env:
            names.append(f"env: {self.env}" + (f" ({self.shown_env_note})" if self.shown_env_note else ""))
        if names:
            parts.append("; ".join(names))
        return ". ".join(parts) + "."


def _images(option: Option, setting: Setting) -> tuple[str, ...]:
    for ref in setting.value:
        try:
            check_source_name(ref)
        except (ImageReferenceError, SourceError) as exc:
            raise pytest.UsageError(f"{option.flag}: {exc}") from None
    return tuple(dict.fromkeys(setting.value))


def _baselines(option: Option, setting: Setting) -> tuple[tuple[str | None, str], ...]:
    """``REF`` (the release before, of every image) or ``IMAGE=REF``; each REF a source name."""
    out: dict[str | None, str] = {}
    for item in setting.value:
        image, sep, ref = item.partition("=")
        image_or_none = image.strip() if sep else None
        ref = (ref if sep else item).strip()
        try:
            check_source_name(ref)
        except (ImageReferenceError, SourceError) as exc:
            raise pytest.UsageError(f"{option.flag} ({setting.source}): {exc}") from None
        if image_or_none in out:
            which = f"image {image_or_none}" if image_or_none else "every image"
            raise pytest.UsageError(f"{option.flag} ({setting.source}): two baselines for {which}: name one")
        out[image_or_none] = ref
    return tuple(out.items())


def _attestations(option: Option, setting: Setting) -> tuple[str, ...]:
    """``sbom,provenance`` on the command line too, as the gate takes it."""
    try:
        return attestation_kinds(setting.value)
    except ValueError as exc:
        raise pytest.UsageError(f"{option.flag} ({setting.source}): {exc}") from None


def _whole(option: Option, setting: Setting) -> int | None:
    """A whole number of at least 1, or None when not given."""
    if setting.value is None:
        return None
    if setting.value != int(setting.value):
        raise pytest.UsageError(f"{option.flag} ({setting.source}): {setting.value:g} is not a whole number")
    return int(setting.value)


def _platforms(option: Option, setting: Setting) -> list[Platform] | None:
    try:
        return parse_list(setting.value)
    except PlatformError as exc:
        raise pytest.UsageError(f"{option.flag} ({setting.source}): {exc}") from None


def _globs(option: Option, setting: Setting) -> tuple[str, ...]:
    """Globs on paths inside the image, which are absolute: ``usr/local/bin/*`` means
    ``/usr/local/bin/*``, as it would to anyone reading it."""
    return tuple(g if g.startswith(("/", "*")) else "/" + g for g in setting.value)


def _named_platform(name: str, where: str) -> Platform:
    """The platform a ``PLATFORM=...`` item names; a usage error starting with ``where``."""
    try:
        platform = Platform.parse(name)
        check_known(platform, name)
    except PlatformError as exc:
        raise pytest.UsageError(f"{where}: {exc}") from None
    return platform


def _engines(option: Option, setting: Setting) -> tuple[tuple[Platform, str], ...]:
    routes: dict[Platform, str] = {}
    for item in setting.value:
        name, sep, host = item.partition("=")
        if not sep or not host:
            raise pytest.UsageError(f"{option.flag} ({setting.source}): {item!r} is not PLATFORM=DOCKER_HOST")
        platform = _named_platform(name, f"{option.flag} ({setting.source})")
        routes[platform] = host if "://" in host else _context_host(option, host, setting.source)
    return tuple(routes.items())


_PAGE = re.compile(r"(\d+)\s*(k|kb|kib)?", re.IGNORECASE)


def _page_sizes(option: Option, setting: Setting) -> tuple[tuple[Platform | None, int], ...]:
    """``SIZE`` (every platform whose kernels have such pages) or ``PLATFORM=SIZE``; a
    size is bytes or KiB: 4K, 16K, 64K."""
    known = sorted({size for sizes in PAGE_SIZES.values() for size in sizes} | {4096})
    choices = ", ".join(f"{size // 1024}K" for size in known)
    out: dict[Platform | None, int] = {}
    for item in setting.value:
        name, sep, text = item.rpartition("=")
        m = _PAGE.fullmatch(text.strip())
        size = int(m.group(1)) * (1024 if m.group(2) else 1) if m else 0
        where = f"{option.flag} ({setting.source}): {item!r}"
        platform = None
        if sep:
            platform = _named_platform(name, where)
            allowed = page_sizes(platform)
            if size not in allowed:
                have = ", ".join(f"{s // 1024}K" for s in sorted(allowed))
                raise pytest.UsageError(f"{where}: {platform} kernels have {have} pages; name one of those")
        elif size not in known:
            raise pytest.UsageError(f"{where} is not a page size: name one of {choices}, or PLATFORM=SIZE")
        out[platform] = size
    return tuple(out.items())


def _qemu_cpus(option: Option, setting: Setting) -> tuple[tuple[Platform, str], ...]:
    out: dict[Platform, str] = {}
    for item in setting.value:
        name, sep, cpu = item.partition("=")
        where = f"{option.flag} ({setting.source}): {item!r}"
        if not sep or not cpu.strip():
            raise pytest.UsageError(f"{where} is not PLATFORM=CPU (e.g. linux/arm64=cortex-a72)")
        platform = _named_platform(name, where)
        spec = spec_for(platform)
        models = qemu_cpu_models(spec.binfmt) if spec is not None else None
        if models is not None and cpu.strip() not in models:
            raise pytest.UsageError(
                f"{where}: this machine's {spec.binfmt if spec else 'QEMU'} knows no CPU {cpu.strip()!r}; "
                f"`{spec.binfmt if spec else 'qemu'}-static -cpu help` lists its {len(models)} models "
                f"(e.g. {', '.join(models[:6])})"
            )
        out[platform] = cpu.strip()
    return tuple(out.items())


def _context_host(option: Option, name: str, source: str) -> str:
    """The DOCKER_HOST of a docker context, as `docker context inspect` tells it."""
    try:
        out = subprocess.run(
            ["docker", "context", "inspect", name, "--format", "{{.Endpoints.docker.Host}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError as exc:
        raise pytest.UsageError(
            f"{option.flag} ({source}): {name!r} is no URL and the docker CLI to look it up as a context is missing "
            f"({exc})"
        ) from None
    if out.returncode != 0 or not out.stdout.strip():
        raise pytest.UsageError(
            f"{option.flag} ({source}): {name!r} is neither a DOCKER_HOST URL "
            "(unix://, tcp://, ssh://) nor a docker context (see `docker context ls`)"
        )
    return out.stdout.strip()


#: Every setting, once. ``--help`` lists them in this order, and the README's options
#: table has a row for each (tests/unit/test_option_table.py checks both).
OPTIONS: tuple[Option, ...] = (
    Option(
        "--image",
        "images",
        "list",
        "image to test on every platform of its manifest list",
        ini="multiarch_images",
        env="MULTIARCH_IMAGES",
        default=(),
        metavar="REF",
        convert=_images,
    ),
    Option(
        "--platforms",
        "platforms",
        "text",
        "OCI platforms to test, comma-separated (linux/amd64,linux/arm64), or 'all' for every entry of the index. "
        "A requested platform missing from the index fails",
        ini="multiarch_platforms",
        env="MULTIARCH_PLATFORMS",
        default="all",
        metavar="LIST|all",
        convert=_platforms,
    ),
    Option(
        "--multiarch-json",
        "json_path",
        "text",
        "write the per-platform JSON report (schema 1) to PATH",
        ini="multiarch_json",
        env="MULTIARCH_JSON",
        metavar="PATH",
    ),
    Option(
        "--multiarch-markdown",
        "markdown_path",
        "text",
        "write the per-platform summary as Markdown to PATH (it is also appended to $GITHUB_STEP_SUMMARY when "
        "that is set)",
        metavar="PATH",
    ),
    Option(
        "--multiarch-html",
        "html_path",
        "text",
        "write the results as one self-contained HTML page (no network, no external assets) to PATH",
        metavar="PATH",
    ),
    Option(
        "--max-slowdown",
        "max_slowdown",
        "positive",
        "fail an emulated platform whose measured slowdown (command time against native) is above X, e.g. 8",
        ini="multiarch_max_slowdown",
        env="MULTIARCH_MAX_SLOWDOWN",
        metavar="X",
    ),
    Option(
        "--slowdown-probe",
        "probe",
        "choice",
        "the built-in slowdown probe (a few short commands timed per platform): 'auto' runs it for the platforms "
        "no user test runs on, so they get a figure too; 'always'; 'never'",
        default="auto",
        choices=("auto", "always", "never"),
    ),
    Option(
        "--elf-include",
        "elf_include",
        "list",
        "audit only ELF files whose image path matches GLOB",
        ini="multiarch_elf_include",
        env="MULTIARCH_ELF_INCLUDE",
        default=(),
        metavar="GLOB",
        convert=_globs,
    ),
    Option(
        "--elf-exclude",
        "elf_exclude",
        "list",
        "leave ELF files matching GLOB out of the audit, e.g. firmware for another CPU",
        ini="multiarch_elf_exclude",
        env="MULTIARCH_ELF_EXCLUDE",
        default=(),
        metavar="GLOB",
        convert=_globs,
    ),
    Option(
        "--scratch-registry",
        "scratch_registry",
        "text",
        "registry that OCI layouts and archives are copied into so the engine can pull them by digest",
        env="MULTIARCH_SCRATCH_REGISTRY",
        default=DEFAULT_SCRATCH_REGISTRY,
        metavar="HOST:PORT",
    ),
    Option(
        "--insecure-registry",
        "insecure",
        "flag",
        "allow plain http to registries that are not on loopback (loopback always may use it)",
        default=False,
    ),
    Option(
        "--engine",
        "engines",
        "list",
        "run PLATFORM on another engine: a DOCKER_HOST (unix://, tcp://, ssh://) or a docker context name, "
        "e.g. linux/arm64=ssh://arm-runner",
        ini="multiarch_engines",
        env="MULTIARCH_ENGINES",
        default=(),
        metavar="PLATFORM=DOCKER_HOST",
        convert=_engines,
    ),
    Option(
        "--strict-platforms",
        "strict",
        "flag",
        "a requested platform this host cannot run fails instead of being skipped",
        ini="multiarch_strict_platforms",
        default=False,
    ),
    Option(
        "--strict-elf",
        "strict_elf",
        "flag",
        "fail the elf check on warnings too (32-bit compat code, shared libraries above the ARM variant), "
        "for teams shipping to CPUs without AArch32",
        ini="multiarch_strict_elf",
        env="MULTIARCH_STRICT_ELF",
        default=False,
    ),
    Option(
        "--page-size",
        "page_sizes",
        "list",
        "fail a platform whose ELF files cannot run on kernels with pages of SIZE (4K, 16K, 64K), their PT_LOAD "
        "alignment being smaller; PLATFORM=SIZE for one platform (linux/arm64=16K), a bare SIZE for every platform "
        "whose kernels have such pages. Without it the pages check only reports the largest page size each "
        "platform's files allow",
        ini="multiarch_page_size",
        env="MULTIARCH_PAGE_SIZE",
        default=(),
        metavar="[PLATFORM=]SIZE",
        convert=_page_sizes,
    ),
    Option(
        "--qemu-cpu",
        "qemu_cpus",
        "list",
        "emulate PLATFORM on this CPU model (QEMU_CPU in its containers), the oldest CPU it must run on, e.g. "
        "linux/arm64=cortex-a72 (Raspberry Pi 4: no LSE atomics) or linux/amd64=Nehalem (x86-64-v2); "
        "`qemu-aarch64-static -cpu help` lists the models. Natively run platforms are not affected",
        ini="multiarch_qemu_cpu",
        env="MULTIARCH_QEMU_CPU",
        default=(),
        metavar="PLATFORM=CPU",
        convert=_qemu_cpus,
    ),
    Option(
        "--baseline",
        "baselines",
        "list",
        "the release before, to compare each image with: REF (any image source) for every image, or IMAGE=REF. "
        "An image that lacks a platform its baseline had fails; the report says per platform what changed",
        ini="multiarch_baseline",
        env="MULTIARCH_BASELINE",
        default=(),
        metavar="[IMAGE=]REF",
        convert=_baselines,
    ),
    Option(
        "--require-attestations",
        "require_attestations",
        "list",
        "attestation kinds (sbom, provenance; comma-separated or repeated) every platform of an index must carry, "
        "as BuildKit attaches them; "
        "without it, attestations on some platforms but not others are a warning",
        ini="multiarch_require_attestations",
        env="MULTIARCH_REQUIRE_ATTESTATIONS",
        default=(),
        metavar="KIND",
        convert=_attestations,
    ),
    Option(
        "--multiarch-timeout",
        "timeout",
        "positive",
        "how long one container.run() may take natively; emulated platforms get it times their measured slowdown",
        ini="multiarch_timeout",
        env="MULTIARCH_TIMEOUT",
        default=120.0,
        metavar="SECONDS",
    ),
    Option(
        "--max-layer-bytes",
        "max_layer_bytes",
        "bytes",
        "the most bytes one image layer may decompress to; a layer past it fails the audit as a probable "
        "decompression bomb",
        ini="multiarch_max_layer_bytes",
        env=MAX_LAYER_ENV,
        default=DEFAULT_MAX_LAYER_BYTES,
        metavar="N",
    ),
    Option(
        "--multiarch-parallel",
        "parallel",
        "positive",
        "how many images are pulled (or loaded) and containers started at once in the background, the first "
        "platform's first, while the first platforms' tests run. Default: the machine's cores + 1, at most 8",
        ini="multiarch_parallel",
        env="MULTIARCH_PARALLEL",
        metavar="N",
        convert=_whole,
    ),
    Option(
        "--multiarch-feed",
        "feed",
        "choice",
        "how each platform's image gets into the engine: 'pull' by digest from its registry; 'load' from the "
        "blobs the audit already downloaded (docker load), so each byte crosses the link once; 'auto' loads "
        "images whose registry is not on this machine and pulls from a registry on loopback",
        ini="multiarch_feed",
        env="MULTIARCH_FEED",
        default="auto",
        choices=FEEDS,
    ),
    Option(
        "--multiarch-progress",
        "progress",
        "choice",
        "what a run shows while it waits for pulls, audits and starts: 'status', one line rewritten in place "
        "(pulling linux/arm64 120/410 MB; auditing linux/s390x); 'lines', one line per platform ready, for CI "
        "logs; 'auto' is 'status' on a terminal and 'lines' elsewhere or when CI is set; 'off'",
        ini="multiarch_progress",
        env="MULTIARCH_PROGRESS",
        default="auto",
        choices=("auto", "status", "lines", "off"),
    ),
    Option(
        "--multiarch-timings",
        "timings",
        "flag",
        "print where the run's time went, per platform: resolve, audit, pull, start, checks, tests, probe, "
        "cleanup (the JSON report has it either way, under timings)",
        ini="multiarch_timings",
        env="MULTIARCH_TIMINGS",
        default=False,
    ),
    Option(
        "--multiarch-session-id",
        "session_id",
        "text",
        "the id this run labels its containers with, so that whoever started it can find them; "
        "by default a new random one",
        env="MULTIARCH_SESSION_ID",
        metavar="ID",
    ),
)


def _default(field: str) -> Any:
    return next(option.default for option in OPTIONS if option.field == field)


@dataclass(frozen=True)
class Options:
    """The resolved settings: one field per entry of OPTIONS (its ``field``), and where the
    images and platforms came from. resolve() builds it by keyword."""

    images: tuple[str, ...]
    images_source: str
    platforms: list[Platform] | None
    platforms_source: str
    json_path: str | None
    elf_include: tuple[str, ...] = ()
    elf_exclude: tuple[str, ...] = ()
    scratch_registry: str = _default("scratch_registry")
    insecure: bool = False
    strict: bool = False
    timeout: float = _default("timeout")
    engines: tuple[tuple[Platform, str], ...] = ()
    markdown_path: str | None = None
    html_path: str | None = None
    max_slowdown: float | None = None
    probe: str = _default("probe")  # auto | always | never
    strict_elf: bool = False
    #: None: not given, the run makes up its own.
    session_id: str | None = None
    max_layer_bytes: int = _default("max_layer_bytes")
    page_sizes: tuple[tuple[Platform | None, int], ...] = ()
    qemu_cpus: tuple[tuple[Platform, str], ...] = ()
    #: (image, or None for every image) -> the release before it.
    baselines: tuple[tuple[str | None, str], ...] = ()
    require_attestations: tuple[str, ...] = ()
    #: None: the harness's default (harness.session.default_parallel).
    parallel: int | None = None
    feed: str = _default("feed")
    progress: str = _default("progress")
    timings: bool = False

    def baseline_for(self, image: str) -> str | None:
        named = dict(self.baselines)
        return named.get(image, named.get(None))

    @property
    def platforms_text(self) -> str:
        return "all" if self.platforms is None else format_list(self.platforms)


_FIELDS = frozenset(f.name for f in dataclasses.fields(Options))


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("multiarch", "multi-architecture image testing")
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.dest, "default": None, "help": option.help_text}
        if option.kind == "flag":
            kwargs.update(action="store_true", default=False)
        else:
            kwargs["metavar"] = option.shown_metavar
        if option.kind == "list":
            kwargs["action"] = "append"
        elif option.kind == "positive":
            kwargs["type"] = float
        elif option.kind == "bytes":
            kwargs["type"] = int
        elif option.kind == "choice":
            kwargs["choices"] = option.choices
        group.addoption(option.flag, **kwargs)
        if option.ini:
            each = ", one per line" if option.kind == "list" else ""
            parser.addini(
                option.ini,
                f"as {option.flag}{each}: {option.help}",
                type=_INI_TYPE.get(option.kind, "string"),
                default=_INI_DEFAULT.get(option.kind, ""),
            )


def value(config: pytest.Config, option: Option) -> Setting:
    """The value of one option, parsed as its kind says, and where it came from."""
    raw, source = _given(config, option)
    parsed = option.default if source == "default" else _parse(option, raw, source)
    setting = Setting(parsed, source)
    return Setting(option.convert(option, setting), source) if option.convert else setting


def _given(config: pytest.Config, option: Option) -> tuple[Any, str]:
    """The first source that gives the option, unparsed: command line, ini, environment."""
    cli = config.getoption(option.dest)
    # A number counts even when it is 0 (to be refused, not skipped); a string or list
    # when it is not empty; a flag when it is on.
    if (cli is not None) if option.kind in ("positive", "bytes", "choice") else bool(cli):
        return cli, "command line"
    if option.ini:
        ini = config.getini(option.ini)
        # An ini "false" counts: it overrides an environment that says on.
        if isinstance(ini, bool) if option.kind == "flag" else bool(ini):
            return ini, "ini"
    if option.env and os.environ.get(option.env, "").strip():
        return os.environ[option.env], f"env {option.env}"
    return option.default, "default"


def _parse(option: Option, raw: Any, source: str) -> Any:
    bad = f"{option.flag} ({source}): {raw!r} is not"
    if option.kind == "list":
        items: Sequence[str] = raw.split(",") if isinstance(raw, str) else raw
        return tuple(item.strip() for item in items if item.strip())
    if option.kind == "flag":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in _TRUE + _FALSE:
            raise pytest.UsageError(f"{bad} one of {', '.join(_TRUE + _FALSE)}")
        return text in _TRUE
    if option.kind == "positive":
        try:
            number = float(str(raw))
        except ValueError:
            number = -1.0
        if not number > 0:  # also refuses nan
            raise pytest.UsageError(f"{bad} a positive number")
        return number
    if option.kind == "bytes":
        try:
            size = int(str(raw))
        except ValueError:
            raise pytest.UsageError(f"{bad} a number of bytes") from None
        if size <= 0:
            raise pytest.UsageError(f"{bad} a positive number of bytes")
        return size
    text = str(raw).strip()
    if option.kind == "choice" and text not in option.choices:
        raise pytest.UsageError(f"{bad} one of {', '.join(option.choices)}")
    return text


def resolve(config: pytest.Config) -> Options:
    """Read and validate every option; bad input is a usage error that says the fix."""
    fields: dict[str, Any] = {}
    for option in OPTIONS:
        setting = value(config, option)
        fields[option.field] = setting.value
        if f"{option.field}_source" in _FIELDS:
            fields[f"{option.field}_source"] = setting.source
    return Options(**fields)


def check_writable(opts: Options) -> None:
    """A report that cannot be written is a usage error now, not a traceback after the run.

    Reports are written atomically (a file beside the target, then renamed), so what must
    be writable is the folder: the nearest one that exists, since the missing ones are made
    only when the report is written. Nothing is left behind by the check.
    """
    for flag, path in (
        ("--multiarch-json", opts.json_path),
        ("--multiarch-html", opts.html_path),
        ("--multiarch-markdown", opts.markdown_path),
    ):
        if not path:
            continue
        target = Path(path).absolute()
        folder = target.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        probe = folder / f".multiarch-write-check.{os.getpid()}"
        try:
            if target.is_dir():
                raise IsADirectoryError(21, "it is a directory")
            if not folder.is_dir():
                raise NotADirectoryError(20, f"{folder} is not a directory")
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise pytest.UsageError(
                f"{flag} {path}: cannot write the report there ({exc.strerror or exc}): pick a writable path"
            ) from None


def settings(opts: Options) -> dict[str, Any]:
    """The settings that narrow or judge a check, as the report records them."""
    return {
        "images": list(opts.images),
        "platforms": opts.platforms_text,
        "elf_include": list(opts.elf_include),
        "elf_exclude": list(opts.elf_exclude),
        "max_slowdown": opts.max_slowdown,
        "strict_platforms": opts.strict,
        "strict_elf": opts.strict_elf,
        "slowdown_probe": opts.probe,
        "timeout_s": opts.timeout,
        "engines": {str(p): host for p, host in opts.engines},
        "page_sizes": {str(p) if p else "*": size for p, size in opts.page_sizes},
        "qemu_cpus": {str(p): cpu for p, cpu in opts.qemu_cpus},
        "baselines": {image or "*": ref for image, ref in opts.baselines},
        "require_attestations": list(opts.require_attestations),
    }
