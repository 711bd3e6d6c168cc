"""OPTIONS in plugins/options.py is the one place where an option's flag, ini name,
environment variable and default are written. `pytest --help`, the README's options table
and the resolver must each say the same as it, entry by entry."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.platform import Platform
from plugins.options import OPTIONS, Option, resolve, value

README = Path(__file__).parents[2] / "README.md"
ENV_NAMES = [option.env for option in OPTIONS if option.env]
P = Platform.parse

#: For every entry, a valid value from each source it has, and what the resolved Options
#: field is then. "cli" None is the bare flag. An entry added to the table without its
#: samples here fails test_samples_cover_every_source.
SAMPLES: dict[str, dict[str, tuple[str | None, Any]]] = {
    "images": {
        "cli": ("team/cli:1", ("team/cli:1",)),
        "ini": ("team/ini:1", ("team/ini:1",)),
        "env": ("team/env:1, team/env:2", ("team/env:1", "team/env:2")),
    },
    "platforms": {
        "cli": ("linux/arm64", [P("linux/arm64")]),
        "ini": ("aarch64, linux/arm/v7", [P("linux/arm64"), P("linux/arm/v7")]),
        "env": ("linux/s390x", [P("linux/s390x")]),
    },
    "json_path": {"cli": ("cli.json", "cli.json"), "ini": ("ini.json", "ini.json"), "env": ("env.json", "env.json")},
    "markdown_path": {"cli": ("out.md", "out.md")},
    "html_path": {"cli": ("out.html", "out.html")},
    "max_slowdown": {"cli": ("3", 3.0), "ini": ("4.5", 4.5), "env": ("6", 6.0)},
    "probe": {"cli": ("never", "never")},
    "elf_include": {
        "cli": ("usr/bin/*", ("/usr/bin/*",)),
        "ini": ("/opt/*", ("/opt/*",)),
        "env": ("bin/*, *.so", ("/bin/*", "*.so")),
    },
    "elf_exclude": {
        "cli": ("*.ko", ("*.ko",)),
        "ini": ("lib/firmware/*", ("/lib/firmware/*",)),
        "env": ("/boot/*,", ("/boot/*",)),
    },
    "scratch_registry": {"cli": ("cli.test:5000", "cli.test:5000"), "env": ("env.test:5000", "env.test:5000")},
    "insecure": {"cli": (None, True)},
    "engines": {
        "cli": ("linux/arm64=ssh://arm", ((P("linux/arm64"), "ssh://arm"),)),
        "ini": ("s390x=tcp://s390x:2375", ((P("linux/s390x"), "tcp://s390x:2375"),)),
        "env": ("linux/riscv64=unix:///r.sock", ((P("linux/riscv64"), "unix:///r.sock"),)),
    },
    "strict": {"cli": (None, True), "ini": ("true", True)},
    "strict_elf": {"cli": (None, True), "ini": ("true", True), "env": ("yes", True)},
    "timeout": {"cli": ("30", 30.0), "ini": ("45", 45.0), "env": ("60", 60.0)},
    "parallel": {"cli": ("2", 2), "ini": ("3", 3), "env": ("6", 6)},
    "feed": {"cli": ("load", "load"), "ini": ("pull", "pull"), "env": ("load", "load")},
    "progress": {"cli": ("lines", "lines"), "ini": ("off", "off"), "env": ("status", "status")},
    "timings": {"cli": (None, True), "ini": ("true", True), "env": ("1", True)},
    "max_layer_bytes": {"cli": ("1024", 1024), "ini": ("2048", 2048), "env": ("4096", 4096)},
    "session_id": {"cli": ("cli-id", "cli-id"), "env": ("env-id", "env-id")},
    "page_sizes": {
        "cli": ("linux/arm64=16K", ((P("linux/arm64"), 16384),)),
        "ini": ("64k", ((None, 65536),)),
        "env": ("linux/ppc64le=65536, 16KiB", ((P("linux/ppc64le"), 65536), (None, 16384))),
    },
    "qemu_cpus": {
        "cli": ("linux/arm64=cortex-a72", ((P("linux/arm64"), "cortex-a72"),)),
        "ini": ("linux/amd64=Nehalem", ((P("linux/amd64"), "Nehalem"),)),
        "env": ("linux/arm/v6=arm1176", ((P("linux/arm/v6"), "arm1176"),)),
    },
    "baselines": {
        "cli": ("team/app:1.0", ((None, "team/app:1.0"),)),
        "ini": ("team/app:1.1=team/app:1.0", (("team/app:1.1", "team/app:1.0"),)),
        "env": ("team/a:2=team/a:1, team/b:1.0", (("team/a:2", "team/a:1"), (None, "team/b:1.0"))),
    },
    "require_attestations": {
        "cli": ("sbom", ("sbom",)),
        "ini": ("provenance", ("provenance",)),
        "env": ("SBOM, provenance", ("sbom", "provenance")),
    },
}


def ids(option: Option) -> str:
    return option.flag


def cli_args(option: Option) -> list[str]:
    raw = SAMPLES[option.field]["cli"][0]
    return [option.flag] if raw is None else [option.flag, raw]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# --- (a) pytest --help ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def help_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    where = tmp_path_factory.mktemp("help")
    (where / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MULTIARCH_", "PYTEST_"))}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        cwd=where,
        env={**env, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def help_group(help_text: str) -> list[str]:
    """The lines of the plugin's group in --help."""
    lines = help_text.splitlines()
    start = lines.index("multi-architecture image testing:")
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return lines[start + 1 : end]


def help_of(help_text: str, flag: str) -> str:
    """What --help says of one option, its wrapped lines joined."""
    lines = help_group(help_text)
    starts = [i for i, line in enumerate(lines) if re.match(rf"  {re.escape(flag)}(=|\s|$)", line)]
    assert len(starts) == 1, f"{flag} is listed {len(starts)} times in --help"
    block = [lines[starts[0]]]
    for line in lines[starts[0] + 1 :]:
        if line.startswith("  -"):
            break
        block.append(line)
    return " ".join(" ".join(block).split())


def test_help_lists_exactly_the_table(help_text: str):
    listed = [m.group(1) for line in help_group(help_text) if (m := re.match(r"  (--[\w-]+)", line))]
    assert listed == [option.flag for option in OPTIONS]


@pytest.mark.parametrize("option", OPTIONS, ids=ids)
def test_help_names_the_ini_and_environment_variable(help_text: str, option: Option):
    said = help_of(help_text, option.flag)
    assert said.startswith(option.flag + (f"={option.shown_metavar}" if option.shown_metavar else ""))
    for part, name in (("ini", option.ini), ("env", option.env)):
        if name:
            assert f"{part}: {name}" in said, said
        else:
            assert f"{part}: " not in said, said
    if option.shown_default is not None:
        assert f"Default: {option.shown_default}." in said, said
    if option.ini:
        assert re.search(rf"^  {option.ini} \(", help_text, re.M), f"{option.ini} is not among the ini options"


# --- (b) the README's options table ---------------------------------------------------------
def readme_rows() -> list[dict[str, str]]:
    section = README.read_text().split("\n### Options\n", 1)[1].split("\n### ", 1)[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    assert table[:2] == ["| option | ini | environment | default | meaning |", "|---|---|---|---|---|"]
    rows = []
    for line in table[2:]:
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        assert len(cells) == 5, line
        code = re.match(r"`(--[^`]+)`", cells[0])
        assert code, f"the row does not start with a flag: {line}"
        flag, _, metavar = code.group(1).partition(" ")
        option, ini, env, default, _meaning = cells
        rows.append({"flag": flag, "metavar": metavar, "option": option, "ini": ini, "env": env, "default": default})
    return rows


def row_of(flag: str) -> dict[str, str]:
    rows = [row for row in readme_rows() if row["flag"] == flag]
    assert len(rows) == 1, f"the README's options table has {len(rows)} rows for {flag}"
    return rows[0]


def first_code(cell: str) -> str | None:
    m = re.search(r"`([^`]+)`", cell)
    return m.group(1) if m else None


def test_readme_rows_are_exactly_the_table():
    assert [row["flag"] for row in readme_rows()] == [option.flag for option in OPTIONS]


@pytest.mark.parametrize("option", OPTIONS, ids=ids)
def test_readme_row_says_what_the_table_says(option: Option):
    row = row_of(option.flag)
    assert row["metavar"] == (option.shown_metavar or ""), row["option"]
    assert ("(repeatable)" in row["option"]) == (option.kind == "list"), row["option"]
    assert first_code(row["ini"]) == option.ini, row["ini"]
    assert first_code(row["env"]) == option.env, row["env"]
    if option.ini_note:
        assert f"({option.ini_note})" in row["ini"], row["ini"]
    if option.shown_env_note:
        assert f"({option.shown_env_note})" in row["env"].replace("`", ""), row["env"]
    default = row["default"]
    if option.shown_default is not None:
        assert default.replace("`", "") == option.shown_default
    elif option.kind == "flag":
        assert default == "off"
    else:
        # No value to show ("none", "all files"): the README must not show one either.
        assert "`" not in default, default
        assert not re.search(r"\d", default), default


# --- (c) the resolver -----------------------------------------------------------------------
@pytest.mark.parametrize("option", OPTIONS, ids=ids)
def test_samples_cover_every_source(option: Option):
    want = {"cli"} | ({"ini"} if option.ini else set()) | ({"env"} if option.env else set())
    assert set(SAMPLES.get(option.field, {})) == want


@pytest.mark.parametrize("option", OPTIONS, ids=ids)
def test_each_source_alone_sets_the_field(pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, option: Option):
    unset = value(pytester.parseconfig(), option)
    assert unset.source == "default"
    assert getattr(resolve(pytester.parseconfig()), option.field) == unset.value
    samples = SAMPLES[option.field]

    want = samples["cli"][1]
    config = pytester.parseconfig(*cli_args(option))
    assert value(config, option).source == "command line"
    assert getattr(resolve(config), option.field) == want != unset.value

    if option.ini:
        raw, want = samples["ini"]
        pytester.makeini(f"[pytest]\n{option.ini} = {raw}\n")
        config = pytester.parseconfig()
        assert value(config, option).source == "ini"
        assert getattr(resolve(config), option.field) == want != unset.value
        pytester.makeini("[pytest]\n")

    if option.env:
        raw, want = samples["env"]
        clean_env.setenv(option.env, str(raw))
        config = pytester.parseconfig()
        assert value(config, option).source == f"env {option.env}"
        assert getattr(resolve(config), option.field) == want != unset.value


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.ini or o.env], ids=ids)
def test_command_line_beats_ini_beats_environment(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, option: Option
):
    samples = SAMPLES[option.field]
    if option.env:
        clean_env.setenv(option.env, str(samples["env"][0]))
    if option.ini:
        pytester.makeini(f"[pytest]\n{option.ini} = {samples['ini'][0]}\n")
    config = pytester.parseconfig(*cli_args(option))
    assert value(config, option).source == "command line"
    assert getattr(resolve(config), option.field) == samples["cli"][1]
    if option.ini:
        config = pytester.parseconfig()
        assert value(config, option).source == "ini"
        assert getattr(resolve(config), option.field) == samples["ini"][1]
    if option.kind == "flag" and option.ini:
        # An on/off value cannot tell the sources apart by value, so: an ini "false" beats
        # an environment that says on, and the bare flag beats an ini "false".
        pytester.makeini(f"[pytest]\n{option.ini} = false\n")
        if option.env:
            clean_env.setenv(option.env, "1")
        assert getattr(resolve(pytester.parseconfig()), option.field) is False
        assert getattr(resolve(pytester.parseconfig(option.flag)), option.field) is True


@pytest.mark.parametrize(
    ("flag", "args", "ini", "env", "message"),
    [
        ("--max-slowdown", [], "", "x", "--max-slowdown (env MULTIARCH_MAX_SLOWDOWN): 'x' is not a positive number"),
        ("--max-slowdown", ["--max-slowdown", "0"], "", "", "--max-slowdown (command line): 0.0 is not a positive"),
        ("--multiarch-timeout", [], "-5", "", "--multiarch-timeout (ini): '-5' is not a positive number"),
        (
            "--max-layer-bytes",
            [],
            "",
            "lots",
            "--max-layer-bytes (env MULTIARCH_MAX_LAYER_BYTES): 'lots' is not a number of bytes",
        ),
        ("--strict-elf", [], "", "maybe", "--strict-elf (env MULTIARCH_STRICT_ELF): 'maybe' is not one of 1, true,"),
        ("--engine", [], "", "arm64", "--engine (env MULTIARCH_ENGINES): 'arm64' is not PLATFORM=DOCKER_HOST"),
        ("--platforms", [], "linux/amd46", "", "--platforms (ini): unknown platform 'linux/amd46'"),
        (
            "--baseline",
            [],
            "",
            "app:1.1=Not An Image",
            "--baseline (env MULTIARCH_BASELINE): 'Not An Image' is not an image reference",
        ),
        ("--baseline", ["--baseline", "a:1", "--baseline", "b:1"], "", "", "--baseline (command line): two baselines"),
        (
            "--require-attestations",
            ["--require-attestations", "sbon"],
            "",
            "",
            "--require-attestations (command line): sbon is no attestation kind; name sbom or provenance",
        ),
        ("--image", [], "", "Not An Image", "--image: 'Not An Image' is not an image reference"),
        ("--page-size", ["--page-size", "8K"], "", "", "--page-size (command line): '8K' is not a page size: name"),
        (
            "--page-size",
            [],
            "linux/amd64=64K",
            "",
            "--page-size (ini): 'linux/amd64=64K': linux/amd64 kernels have 4K pages; name one of those",
        ),
        ("--page-size", [], "", "linux/arm46=16K", "--page-size (env MULTIARCH_PAGE_SIZE): 'linux/arm46=16K': unknown"),
        (
            "--qemu-cpu",
            ["--qemu-cpu", "cortex-a72"],
            "",
            "",
            "--qemu-cpu (command line): 'cortex-a72' is not PLATFORM=CPU",
        ),
        (
            "--qemu-cpu",
            [],
            "",
            "linux/arm64=cortex-a99",
            "--qemu-cpu (env MULTIARCH_QEMU_CPU): 'linux/arm64=cortex-a99': this machine's qemu-aarch64 knows no CPU",
        ),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_the_option_and_source(
    pytester: pytest.Pytester, clean_env: pytest.MonkeyPatch, flag, args, ini, env, message
):
    option = next(o for o in OPTIONS if o.flag == flag)
    if ini:
        pytester.makeini(f"[pytest]\n{option.ini} = {ini}\n")
    if env:
        assert option.env
        clean_env.setenv(option.env, env)
    with pytest.raises(pytest.UsageError) as err:
        resolve(pytester.parseconfig(*args))
    assert str(err.value).startswith(message), str(err.value)
