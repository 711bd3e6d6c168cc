"""The pytest wiring: options, parametrisation, built-in check items, fixtures, reporting.

Every process (the only one, or each xdist worker) has its own :class:`harness.Harness`.
Outcomes travel as records on the test reports (``report.multiarch_record``, which xdist
carries to the controller with the report); the controller alone folds them
into the report, prints the matrix and writes the JSON.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness import Harness
from harness.engine import Engine, EngineError
from harness.html import write_html
from harness.labels import LABEL_SESSION
from harness.platform import Platform
from harness.reference import short_name
from harness.registry import Registry
from harness.report import KIND_TEST, Report, worst, write_atomic
from harness.session import ImagePlan, Target

from . import items as checks_
from . import options
from .junit import split_by_platform
from .runinfo import RunRecorder, Signals, worker_output

RECORD = "multiarch_record"
TARGET_FIXTURE = "multiarch_target"


@dataclass
class State:
    opts: options.Options
    session_id: str
    is_worker: bool
    pins: dict[str, str] = field(default_factory=dict)
    handed: list[ImagePlan] = field(default_factory=list)
    handed_errors: dict[str, str] = field(default_factory=dict)
    _harness: Harness | None = None
    targets: dict[str, Target] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: Target key -> how many user tests this process's collection selected on it.
    selected_tests: dict[str, int] = field(default_factory=dict)
    #: Every image the collected tests name, before any selection; and the node ids of the
    #: built-in check items made for them.
    refs: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    signals: Signals = field(default_factory=Signals)

    @property
    def harness(self) -> Harness:
        if self._harness is None:
            self._harness = Harness(
                self.opts.platforms,
                session_id=self.session_id,
                pins=self.pins,
                plans=self.handed,
                plan_errors=self.handed_errors,
                elf_include=self.opts.elf_include,
                elf_exclude=self.opts.elf_exclude,
                scratch_registry=self.opts.scratch_registry,
                registry=Registry(insecure=self.opts.insecure),
                timeout=self.opts.timeout,
                engines=dict(self.opts.engines),
                strict_elf=self.opts.strict_elf,
            )
        return self._harness

    def plan(self, ref: str) -> ImagePlan:
        plan = self.harness.plan(ref)
        for target in plan.targets:
            self.targets[target.key] = target
        return plan


STATE = pytest.StashKey[State]()
REPORTER = pytest.StashKey["Reporter"]()
RECORDER = pytest.StashKey[RunRecorder]()
COMMAND_SECONDS = pytest.StashKey[float]()


def state_of(config: pytest.Config) -> State:
    return config.stash[STATE]


# --- configuration ---------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    options.addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "image(ref, ...): test on every platform of these images instead of --image")
    config.addinivalue_line("markers", "multiarch_check: a built-in check of an (image, platform)")
    config.addinivalue_line(
        "markers", "fresh_container: give the test a container of its own instead of the platform's shared one"
    )
    opts = options.resolve(config)
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        state = State(
            opts,
            workerinput.get("multiarch_session") or uuid.uuid4().hex[:12],
            True,
            dict(workerinput.get("multiarch_pins") or {}),
            [ImagePlan.from_data(plan) for plan in workerinput.get("multiarch_plans") or ()],
            dict(workerinput.get("multiarch_plan_errors") or {}),
        )
    else:
        options.check_writable(opts)
        state = State(opts, os.environ.get("MULTIARCH_SESSION_ID") or uuid.uuid4().hex[:12], False)
        reporter = Reporter(state)
        config.stash[REPORTER] = reporter
        config.pluginmanager.register(reporter, "multiarch-reporter")
    config.stash[STATE] = state
    state.signals.install()
    recorder = config.stash[RECORDER] = RunRecorder(config, state.signals, lambda: options.settings(opts))
    config.pluginmanager.register(recorder, "multiarch-run")
    config.pluginmanager.register(_AfterSelection(), "multiarch-after-selection")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(), "multiarch-xdist")


class _XdistHooks:
    """Present only with pytest-xdist: hand each worker the session and the images' plans."""

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        """The controller resolves each image once and hands workers on this machine the
        plan itself (platforms, digests, modes) or the failure, so every worker collects
        the same tests. A worker on another host (``--tx ssh=...``) may see other engines:
        it gets the index digests only and finds its own modes."""
        state = state_of(node.config)
        node.workerinput["multiarch_session"] = state.session_id
        plans: list[ImagePlan] = []
        errors: dict[str, str] = {}
        for ref in state.opts.images:
            try:
                plans.append(state.plan(ref))
            except Exception as exc:
                errors[ref] = str(exc)
        spec = node.gateway.spec
        if spec.popen and not spec.via:
            node.workerinput["multiarch_plans"] = [plan.to_data() for plan in plans]
            node.workerinput["multiarch_plan_errors"] = errors
        else:
            node.workerinput["multiarch_pins"] = {plan.image: plan.digest for plan in plans}

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        dist = config.getvalue("dist")
        if dist == "loadgroup" or (dist == "load" and state_of(config).opts.images):
            from .scheduling import PlatformScheduling

            return PlatformScheduling(config, log)
        return None


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = state_of(config)
    lines = [f"multiarch: platforms {state.opts.platforms_text} (from {state.opts.platforms_source})"]
    if not state.opts.images:
        return lines  # no engine needed yet: a run without --image may never touch one
    lines.append(f"multiarch: images {', '.join(state.opts.images)} (from {state.opts.images_source})")
    try:
        engine = state.harness.engine
        lines.append(f"multiarch: engine {engine.description}, platform {engine.platform}")
    except EngineError as exc:
        lines.append(f"multiarch: {exc}")
    return lines


# --- collection ------------------------------------------------------------------------------
def _images_for(node: pytest.Item | Any, state: State) -> tuple[str, ...]:
    refs: list[str] = []
    for mark in node.iter_markers("image"):
        refs.extend(str(a) for a in mark.args)
    return tuple(dict.fromkeys(refs)) if refs else state.opts.images


def _param_id(target_platform: str, image: str, several: bool) -> str:
    return f"{short_name(image)}-{target_platform}" if several else target_platform


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if TARGET_FIXTURE not in metafunc.fixturenames:
        return
    direct = {
        name.strip()
        for mark in metafunc.definition.iter_markers("parametrize")
        for name in (mark.args[0].split(",") if isinstance(mark.args[0], str) else mark.args[0])
    }
    if direct & {"platform", "container", TARGET_FIXTURE}:
        return  # the test gives these values itself
    state = state_of(metafunc.config)
    refs = _images_for(metafunc.definition, state)
    if not refs:
        pytest.fail(
            f"{metafunc.definition.nodeid} uses a multiarch fixture (container, platform) but names no "
            "image: pass --image REF or mark the test with @pytest.mark.image('REF')",
            pytrace=False,
        )
    params = []
    for ref in refs:
        try:
            plan = state.plan(ref)
        except Exception as exc:
            key = f"{ref}|unresolved"
            state.errors[key] = f"{ref}: {exc}"
            params.append(pytest.param(key, id=_param_id("unresolved", ref, len(refs) > 1)))
            continue
        for target in plan.targets:
            marks = []
            if not target.mode.runnable and not state.opts.strict:
                marks.append(pytest.mark.skip(reason=f"{target.platform} cannot run here: {target.mode.reason}"))
            params.append(pytest.param(target.key, id=_param_id(str(target.platform), ref, len(refs) > 1), marks=marks))
    metafunc.parametrize(TARGET_FIXTURE, params, indirect=True)


# First, before any selection: which images the collected tests name (with --image or a
# marker), so that a filter that deselects every test of an image keeps its checks.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = state_of(config)
    refs = list(state.opts.images)
    for item in items:
        for ref in _images_for(item, state) if TARGET_FIXTURE in getattr(item, "fixturenames", ()) else ():
            if ref not in refs:
                refs.append(ref)
    state.refs = refs


class _AfterSelection:
    """Last, after -k and -m have deselected what they will: the built-in checks of every
    image run whatever the selection, so a filtered run still audits and runs every
    platform. (A hook wrapper that deselects after this, as --lf does, shows in the run's
    deselected items.)"""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        state = state_of(config)
        targets = [target for target in (_target_of(item, state) for item in items) if target is not None]
        tested = {target.key for target in targets}
        for target in targets:
            state.selected_tests[target.key] = state.selected_tests.get(target.key, 0) + 1
        built: list[pytest.Item] = []
        for ref in state.refs:
            built.extend(checks_.for_image(session, state, ref, tested))
        state.built = [item.nodeid for item in built]
        items[:0] = built
        if state.is_worker:
            # Longest first: emulated platforms take several times as long as native ones, so
            # handing them out first keeps one worker from finishing long after the other.
            # Every worker sorts alike, so their collections stay identical.
            items.sort(key=lambda item: 0 if _emulated(_target_of(item, state)) else 1)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """A built-in check that is gone by now was removed without a word (a plugin that
        filters items without calling pytest_deselected): the run did not check it."""
        kept = {item.nodeid for item in session.items}
        dropped = [nodeid for nodeid in state_of(session.config).built if nodeid not in kept]
        session.config.stash[RECORDER].dropped(dropped)


def _emulated(target: Target | None) -> bool:
    return target is not None and target.mode.emulated


def _target_of(item: pytest.Item, state: State) -> Target | None:
    if isinstance(item, checks_.CheckItem):
        return item.target
    callspec = getattr(item, "callspec", None)
    key = callspec.params.get(TARGET_FIXTURE) if callspec is not None else None
    return state.targets.get(key) if key is not None else None


# --- fixtures --------------------------------------------------------------------------------
@pytest.fixture
def multiarch(request: pytest.FixtureRequest) -> Harness:
    """The harness of this test process."""
    return state_of(request.config).harness


@pytest.fixture
def multiarch_target(request: pytest.FixtureRequest) -> Target:
    """The (image, platform) under test, pinned by its manifest digest."""
    state = state_of(request.config)
    key = request.param
    if key in state.errors:
        pytest.fail(state.errors[key], pytrace=False)
    target = state.targets[key]
    if not target.mode.runnable:  # only reached under --strict-platforms
        pytest.fail(f"{target.platform} cannot run here (--strict-platforms): {target.mode.reason}", pytrace=False)
    return target


@pytest.fixture
def platform(multiarch_target: Target) -> Platform:
    """The platform under test; ``str(platform)`` is e.g. ``linux/arm64``."""
    return multiarch_target.platform


class TestContainer:
    """The ``container`` fixture: a running container of the platform under test."""

    __test__ = False

    def __init__(self, target: Target, harness: Harness, node: pytest.Item, own: Any = None) -> None:
        self.target = target
        self.platform = target.platform
        self._harness = harness
        self._node = node
        self._own = own  # a container of this test's own (fresh_container), else the shared one

    def run(self, cmd: str | list[str], *, user: str = "", timeout: float | None = None) -> Any:
        """Run ``cmd``; ``timeout`` (seconds natively, default --multiarch-timeout) is scaled
        by the platform's slowdown under emulation."""
        result = self._harness.run(self.target, cmd, user=user, timeout=timeout, container=self._own)
        self._node.stash[COMMAND_SECONDS] = self._node.stash.get(COMMAND_SECONDS, 0.0) + result.duration_s
        return result

    @property
    def id(self) -> str:
        return str((self._own or self._harness.container(self.target)).id)

    def __repr__(self) -> str:
        return f"<container {self.target.image} ({self.platform})>"


@pytest.fixture
def container(request: pytest.FixtureRequest, multiarch_target: Target) -> Iterator[TestContainer]:
    """A running container of the image for the current platform: started once and reused
    by the platform's tests, or, for a test marked ``fresh_container``, its own."""
    state = state_of(request.config)
    own = None
    try:
        if request.node.get_closest_marker("fresh_container"):
            own = state.harness.fresh_container(multiarch_target)
        else:
            state.harness.container(multiarch_target)
    except EngineError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield TestContainer(multiarch_target, state.harness, request.node, own)
    finally:
        if own is not None:
            own.stop()


# --- results ---------------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if isinstance(item, checks_.CheckItem):
        rec = item.record(report)
        if rec is not None:
            setattr(report, RECORD, rec)
        if report.when == "setup" and item.target is not None:
            _junit_properties(item, item.target)
        return report
    target = _target_of(item, state_of(item.config))
    if target is None:
        return report
    detail = ""
    if report.failed:
        detail = _one_line(report)
    elif report.skipped and isinstance(report.longrepr, tuple):
        detail = str(report.longrepr[2])
    if report.when == "setup":
        _junit_properties(item, target)
    rec = checks_.base_record(target, state_of(item.config)) | {
        "kind": KIND_TEST,
        # The same test on every platform shares this name, which pairs them for slowdown.
        "name": item.nodeid.replace(str(target.platform), "*"),
        "nodeid": item.nodeid,
        "outcome": report.outcome,
        "detail": detail,
        "duration_s": report.duration,
        "command_s": item.stash.get(COMMAND_SECONDS, None) if report.when == "call" else None,
    }
    setattr(report, RECORD, rec)
    return report


def _junit_properties(item: pytest.Item, target: Target) -> None:
    """Platform, mode and digest as JUnit properties of the test case, for CI dashboards."""
    item.user_properties.extend(
        [("platform", str(target.platform)), ("mode", target.mode.kind), ("digest", target.digest)]
    )


def _one_line(report: pytest.TestReport) -> str:
    text = report.longreprtext.strip().splitlines()
    errors = [line[2:].strip() for line in text if line.startswith("E ")]
    return (errors[0] if errors else (text[-1] if text else "failed"))[:300]


class Reporter:
    """On the controller only: folds records into the report, writes JSON, prints the matrix."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.report = Report(max_slowdown=state.opts.max_slowdown)
        self.swept = 0
        #: Outcome of each test that runs on no platform (plain tests beside the image's).
        self.others: dict[str, str] = {}
        #: The last record seen of each test, for the reports that come without one.
        self._last: dict[str, dict[str, Any]] = {}

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not self.state.opts.images:
            return
        for engine in self._engines():
            with contextlib.suppress(EngineError):
                self.swept += engine.sweep_stale(self.state.session_id)

    def _engines(self) -> Iterator[Engine]:
        """The default engine and each engine a platform is routed to; unreachable ones left out."""
        harness = self.state.harness
        for platform in [None, *(p for p, _ in self.state.opts.engines)]:
            with contextlib.suppress(EngineError):
                yield harness.engine if platform is None else harness.engine_for(platform)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        rec = getattr(report, RECORD, None)
        if not isinstance(rec, dict) and report.failed and report.nodeid in self._last:
            # A failure reported here, not by the worker that ran the test: pytest-xdist's for
            # a worker that crashed in it. It counts against the test's platform like any other.
            rec = self._last[report.nodeid] | {
                "outcome": report.outcome,
                "detail": _one_line(report),
                "duration_s": 0.0,
                "command_s": None,
            }
        if isinstance(rec, dict):
            self._last[report.nodeid] = rec
            self.report.add(rec)
        elif not report.nodeid.startswith("multiarch:"):
            self.others[report.nodeid] = worst(self.others.get(report.nodeid, "passed"), report.outcome)

    @property
    def _wanted(self) -> bool:
        """Whether this run is about images at all: then it reports, even if cut short."""
        return bool(self.state.opts.images or self.report.images)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self._wanted:
            return  # nothing ran on an engine: do not go looking for one
        harness = self.state.harness
        try:
            engine = harness.engine
            self.report.host_platform, self.report.engine = str(engine.platform), engine.description
        except EngineError:
            self.report.engine = "unreachable"
        # Containers of workers that died still carry this session's label.
        for engine in self._engines():
            with contextlib.suppress(EngineError):
                engine.remove_labelled({LABEL_SESSION: self.state.session_id})
        if session.exitstatus == pytest.ExitCode.OK and self.report.over_limit():
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.report.run = session.config.stash[RECORDER].info(session)
        outcomes = list(self.others.values())
        self.report.run.other_tests = {o: outcomes.count(o) for o in ("passed", "failed", "skipped")}
        if self.state.opts.json_path:
            self.report.write_json(self.state.opts.json_path)
        if self.state.opts.html_path:
            write_html(self.report, self.state.opts.html_path)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if self.state.opts.markdown_path or summary:
            markdown = self.report.markdown()
            if self.state.opts.markdown_path:
                write_atomic(self.state.opts.markdown_path, markdown)
            if summary:  # GitHub collects what every step appends
                with open(summary, "a") as fh:
                    fh.write(markdown)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self._wanted or terminalreporter.config.option.collectonly:
            return
        tr = terminalreporter
        tr.section("multiarch: per-platform results")
        tr.write_line(self.report.matrix(width=tr._tw.fullwidth, colour=tr.hasmarkup))
        for image, plat in self.report.over_limit():
            tr.write_line(f"FAILED {short_name(image)} {plat.platform}: {plat.reason()}", red=True)
        for label, path in (("JSON", self.state.opts.json_path), ("HTML", self.state.opts.html_path)):
            if path:
                tr.write_line(f"{label} report: {path}")
        if self.swept:
            tr.write_line(f"removed {self.swept} containers left by earlier runs that crashed")

    def last_words(self) -> str:
        """A line for after pytest's own summary, when the run could run no container at all."""
        plats = [p for i in self.report.images.values() for p in i.platforms.values()]
        if not plats or any(p.mode in ("native", "emulated") for p in plats):
            return ""
        why = plats[0].mode_reason or "no platform could run here"
        if self.report.engine == "unreachable":
            why = f"no container engine answered ({why})"
        return f"multiarch: no container ran on any platform: {why}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = state_of(session.config)
    if state.is_worker:
        worker_output(session.config, session.config.stash[RECORDER].deselected)
    if state._harness is not None:
        state._harness.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    reporter = config.stash.get(REPORTER, None)
    xmlpath = getattr(config.option, "xmlpath", None)
    if reporter is not None and xmlpath and reporter.report.images and os.path.exists(xmlpath):
        slow = [
            (plat.platform, f"multiarch:{image}::slowdown[{plat.platform}]", plat.limit_reason())
            for image, plat in reporter.report.over_limit()
        ]
        split_by_platform(xmlpath, slow)  # pytest has written it by now (in pytest_sessionfinish)
    if reporter is not None:
        words = reporter.last_words()
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if words and terminal is not None:
            terminal.write_line(words, red=True, bold=True)
        config.pluginmanager.unregister(reporter)
        del config.stash[REPORTER]
    state = config.stash.get(STATE, None)
    if state is not None:
        state.signals.restore()
