"""Options, each with one resolver: command line, then ini, then environment, then default."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.platform import Platform, PlatformError, check_known, format_list, parse_list
from harness.reference import ImageReferenceError
from harness.sources import SourceError, check_source_name


@dataclass(frozen=True)
class Setting:
    value: str | list[str] | None
    source: str  # "command line", "ini", "env NAME", "default"


def addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("multiarch", "multi-architecture image testing")
    group.addoption(
        "--image",
        action="append",
        default=None,
        metavar="REF",
        help="image to test on every platform of its manifest list (repeatable). "
        "ini: multiarch_images; env: MULTIARCH_IMAGES (comma-separated).",
    )
    group.addoption(
        "--platforms",
        default=None,
        metavar="LIST|all",
        help="OCI platforms to test, comma-separated (linux/amd64,linux/arm64), or 'all' for every "
        "entry of the index (default). A requested platform missing from the index fails. "
        "ini: multiarch_platforms; env: MULTIARCH_PLATFORMS.",
    )
    group.addoption(
        "--multiarch-json",
        default=None,
        metavar="PATH",
        help="write the per-platform JSON report (schema 1) to PATH. ini: multiarch_json; env: MULTIARCH_JSON.",
    )
    group.addoption(
        "--multiarch-markdown",
        default=None,
        metavar="PATH",
        help="write the per-platform summary as Markdown to PATH (it is also appended to "
        "$GITHUB_STEP_SUMMARY when that is set).",
    )
    group.addoption(
        "--elf-include",
        action="append",
        default=None,
        metavar="GLOB",
        help="audit only ELF files whose image path matches GLOB (repeatable). ini: multiarch_elf_include.",
    )
    group.addoption(
        "--elf-exclude",
        action="append",
        default=None,
        metavar="GLOB",
        help="leave ELF files matching GLOB out of the audit, e.g. firmware for another CPU (repeatable). "
        "ini: multiarch_elf_exclude.",
    )
    group.addoption(
        "--scratch-registry",
        default=None,
        metavar="HOST:PORT",
        help="registry that OCI layouts and archives are copied into so the engine can pull them by "
        "digest (default 127.0.0.1:5000). env: MULTIARCH_SCRATCH_REGISTRY.",
    )
    group.addoption(
        "--engine",
        action="append",
        default=None,
        metavar="PLATFORM=DOCKER_HOST",
        help="run PLATFORM on another engine: a DOCKER_HOST (unix://, tcp://, ssh://) or a docker context "
        "name, e.g. linux/arm64=ssh://arm-runner (repeatable). ini: multiarch_engines; env: MULTIARCH_ENGINES.",
    )
    group.addoption(
        "--strict-platforms",
        action="store_true",
        default=False,
        help="a requested platform this host cannot run fails instead of being skipped. "
        "ini: multiarch_strict_platforms.",
    )
    group.addoption(
        "--strict-elf",
        action="store_true",
        default=False,
        help="fail the elf check on warnings too (32-bit compat code, shared libraries above the ARM "
        "variant), for teams shipping to CPUs without AArch32. ini: multiarch_strict_elf; env: MULTIARCH_STRICT_ELF.",
    )
    group.addoption(
        "--multiarch-timeout",
        default=None,
        type=float,
        metavar="SECONDS",
        help="how long one container.run() may take natively (default 120); emulated platforms get "
        "it times their measured slowdown. ini: multiarch_timeout.",
    )
    group.addoption(
        "--max-slowdown",
        default=None,
        type=float,
        metavar="X",
        help="fail an emulated platform whose measured slowdown (command time against native) is above "
        "X, e.g. 8. ini: multiarch_max_slowdown; env: MULTIARCH_MAX_SLOWDOWN.",
    )
    group.addoption(
        "--slowdown-probe",
        default="auto",
        choices=("auto", "always", "never"),
        help="the built-in slowdown probe (a few short commands timed per platform): 'auto' (default) "
        "runs it for the platforms no user test runs on, so they get a figure too; 'always'; 'never'.",
    )
    group.addoption(
        "--multiarch-html",
        default=None,
        metavar="PATH",
        help="write the results as one self-contained HTML page (no network, no external assets) to PATH.",
    )
    group.addoption(
        "--insecure-registry",
        action="store_true",
        default=False,
        help="allow plain http to registries that are not on loopback (loopback always may use it)",
    )
    parser.addini("multiarch_engines", "PLATFORM=DOCKER_HOST routes (one per line)", type="linelist", default=[])
    parser.addini("multiarch_strict_platforms", "fail platforms that cannot run here", type="bool", default=False)
    parser.addini("multiarch_strict_elf", "fail the elf check on its warnings too", type="bool", default=None)
    parser.addini("multiarch_timeout", "seconds one command may take natively", default="")
    parser.addini("multiarch_max_slowdown", "fail emulated platforms slower than this factor", default="")
    parser.addini("multiarch_images", "images to test (one per line)", type="linelist", default=[])
    parser.addini("multiarch_elf_include", "globs of ELF paths to audit (one per line)", type="linelist", default=[])
    parser.addini(
        "multiarch_elf_exclude", "globs of ELF paths to leave out (one per line)", type="linelist", default=[]
    )
    parser.addini("multiarch_platforms", "platforms to test, comma-separated, or all", default="")
    parser.addini("multiarch_json", "path of the JSON report", default="")


def _resolve(config: pytest.Config, opt: str, ini: str, env: str) -> Setting:
    value = config.getoption(opt)
    if value:
        return Setting(value, "command line")
    ini_value = config.getini(ini) if ini else None
    if ini_value:
        return Setting(ini_value, "ini")
    if os.environ.get(env):
        return Setting(os.environ[env], f"env {env}")
    return Setting(None, "default")


@dataclass(frozen=True)
class Options:
    images: tuple[str, ...]
    images_source: str
    platforms: list[Platform] | None
    platforms_source: str
    json_path: str | None
    elf_include: tuple[str, ...] = ()
    elf_exclude: tuple[str, ...] = ()
    scratch_registry: str | None = None
    insecure: bool = False
    strict: bool = False
    timeout: float = 120.0
    engines: tuple[tuple[Platform, str], ...] = ()
    markdown_path: str | None = None
    html_path: str | None = None
    max_slowdown: float | None = None
    probe: str = "auto"  # auto | always | never
    strict_elf: bool = False

    @property
    def platforms_text(self) -> str:
        return "all" if self.platforms is None else format_list(self.platforms)


def resolve(config: pytest.Config) -> Options:
    """Read and validate every option; bad input is a usage error that says the fix."""
    images = _resolve(config, "image", "multiarch_images", "MULTIARCH_IMAGES")
    if isinstance(images.value, str):
        refs = [r.strip() for r in images.value.split(",") if r.strip()]
    else:
        refs = [r.strip() for r in images.value or [] if r.strip()]
    for ref in refs:
        try:
            check_source_name(ref)
        except (ImageReferenceError, SourceError) as exc:
            raise pytest.UsageError(f"--image: {exc}") from None
    plats = _resolve(config, "platforms", "multiarch_platforms", "MULTIARCH_PLATFORMS")
    try:
        platforms = parse_list(str(plats.value or "all"))
    except PlatformError as exc:
        raise pytest.UsageError(f"--platforms ({plats.source}): {exc}") from None
    json_path = _resolve(config, "multiarch_json", "multiarch_json", "MULTIARCH_JSON")
    include = _resolve(config, "elf_include", "multiarch_elf_include", "MULTIARCH_ELF_INCLUDE")
    exclude = _resolve(config, "elf_exclude", "multiarch_elf_exclude", "MULTIARCH_ELF_EXCLUDE")
    scratch = _resolve(config, "scratch_registry", "", "MULTIARCH_SCRATCH_REGISTRY")
    return Options(
        tuple(dict.fromkeys(refs)),
        images.source,
        platforms,
        plats.source,
        str(json_path.value) if json_path.value else None,
        _globs(include.value),
        _globs(exclude.value),
        str(scratch.value) if scratch.value else None,
        bool(config.getoption("insecure_registry")),
        bool(config.getoption("strict_platforms") or config.getini("multiarch_strict_platforms")),
        _positive(config, "multiarch_timeout", "MULTIARCH_TIMEOUT", "--multiarch-timeout") or 120.0,
        _engines(config),
        config.getoption("multiarch_markdown"),
        config.getoption("multiarch_html"),
        _positive(config, "max_slowdown", "MULTIARCH_MAX_SLOWDOWN", "--max-slowdown", ini="multiarch_max_slowdown"),
        config.getoption("slowdown_probe"),
        strict_elf=_flag(config, "strict_elf", "multiarch_strict_elf", "MULTIARCH_STRICT_ELF", "--strict-elf"),
    )


def _engines(config: pytest.Config) -> tuple[tuple[Platform, str], ...]:
    setting = _resolve(config, "engine", "multiarch_engines", "MULTIARCH_ENGINES")
    items = setting.value.split(",") if isinstance(setting.value, str) else (setting.value or [])
    routes: dict[Platform, str] = {}
    for item in (i.strip() for i in items if i.strip()):
        name, sep, host = item.partition("=")
        if not sep or not host:
            raise pytest.UsageError(f"--engine ({setting.source}): {item!r} is not PLATFORM=DOCKER_HOST")
        try:
            platform = Platform.parse(name)
            check_known(platform, name)
        except PlatformError as exc:
            raise pytest.UsageError(f"--engine ({setting.source}): {exc}") from None
        routes[platform] = host if "://" in host else _context_host(host, setting.source)
    return tuple(routes.items())


def _context_host(name: str, source: str) -> str:
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
            f"--engine ({source}): {name!r} is no URL and the docker CLI to look it up as a context is missing ({exc})"
        ) from None
    if out.returncode != 0 or not out.stdout.strip():
        raise pytest.UsageError(
            f"--engine ({source}): {name!r} is neither a DOCKER_HOST URL "
            "(unix://, tcp://, ssh://) nor a docker context (see `docker context ls`)"
        )
    return out.stdout.strip()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(config: pytest.Config, opt: str, ini: str, env: str, flag: str) -> bool:
    """An on/off setting: the command line turns it on; else the ini file's bool; else the
    environment's 1/true/yes/on or 0/false/no/off; else off."""
    if config.getoption(opt):
        return True
    ini_value = config.getini(ini)
    if isinstance(ini_value, bool):
        return ini_value
    value = os.environ.get(env, "").strip().lower()
    if value and value not in _TRUE + _FALSE:
        raise pytest.UsageError(f"{flag} (env {env}): {os.environ[env]!r} is not one of {', '.join(_TRUE + _FALSE)}")
    return value in _TRUE


def _positive(config: pytest.Config, opt: str, env: str, flag: str, ini: str | None = None) -> float | None:
    setting = _resolve(config, opt, ini or opt, env)
    if setting.value is None:
        return None
    try:
        value = float(str(setting.value))
    except ValueError:
        value = -1.0
    if value <= 0:
        raise pytest.UsageError(f"{flag} ({setting.source}): {setting.value!r} is not a positive number")
    return value


def _globs(value: str | list[str] | None) -> tuple[str, ...]:
    """Globs on paths inside the image, which are absolute: ``usr/local/bin/*`` means
    ``/usr/local/bin/*``, as it would to anyone reading it."""
    items = value.split(",") if isinstance(value, str) else (value or [])
    globs = (g.strip() for g in items if g.strip())
    return tuple(g if g.startswith(("/", "*")) else "/" + g for g in globs)


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
    }
