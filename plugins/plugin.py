"""The pytest wiring: configuration, parametrisation, collection and records.

The rest lives beside it: :mod:`.state` (what a process knows, stash keys), :mod:`.options`
(the table of settings), :mod:`.fixtures`, :mod:`.items` (built-in check items) and
:mod:`.reporting` (the controller's report and outputs). Every process (the only one, or
each xdist worker) has its own :class:`harness.Harness`. Outcomes travel as records
(:mod:`harness.records`) on the test reports, which xdist carries to the controller; the
controller alone folds them into the report.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from harness.checks import SKIPPED
from harness.engine import EngineError
from harness.errors import MultiarchError
from harness.planner import ImagePlan, Target, unavailable
from harness.records import Subject, TestRecord
from harness.reference import short_name

from . import items as checks_
from . import options
from .fixtures import container, multiarch, multiarch_target, platform
from .progress import Progress, mode_for
from .reporting import RECORD, REPORTER, Reporter, one_line
from .runinfo import RunRecorder, worker_output
from .state import COMMAND_SECONDS, RECORDER, STATE, TARGET_FIXTURE, State, Unresolved, state_of

#: The fixtures, registered with this module (pytest finds a plugin's fixtures in its namespace).
FIXTURES = (container, multiarch, multiarch_target, platform)


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
            dict(workerinput.get("multiarch_surveys") or {}),
        )
    else:
        options.check_writable(opts)
        state = State(opts, opts.session_id or uuid.uuid4().hex[:12], False)
        reporter = Reporter(state)
        config.stash[REPORTER] = reporter
        config.pluginmanager.register(reporter, "multiarch-reporter")
    config.stash[STATE] = state
    state.signals.install()
    if workerinput is None and opts.images and not (config.option.collectonly or config.option.help):
        # Resolving the images and reading their layers needs no engine: it starts now,
        # while the engine is asked what it runs (the report header); so do the pulls of
        # the platforms the user named.
        # No xdist workers: this process runs the tests, the first platform's first.
        xdist = [getattr(config.option, name, None) for name in ("numprocesses", "tx")]
        alone = not any(xdist) and getattr(config.option, "dist", "no") in ("no", None)
        state.harness.prepare_images(opts.images, bring=opts.platforms is not None, start_first=alone)
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
        # A worker's own options say no distribution (xdist resets them there): it is told.
        node.workerinput["multiarch_whole_platforms"] = _whole_platforms(node.config)
        plans: list[ImagePlan] = []
        errors: dict[str, str] = {}
        for ref in state.opts.images:
            try:
                plans.append(state.plan(ref))
            except MultiarchError as exc:
                errors[ref] = str(exc)
        spec = node.gateway.spec
        if not state.prepared:
            # The engine's store and the layer cache are this machine's: what the controller
            # pulls and reads now, while the workers start, they find done.
            state.prepared = True
            state.harness.prepare([t for plan in plans for t in plan.targets], containers=False)
        if spec.popen and not spec.via:
            node.workerinput["multiarch_plans"] = [plan.to_data() for plan in plans]
            node.workerinput["multiarch_plan_errors"] = errors
            with contextlib.suppress(EngineError):  # the same engines: asked once, here
                surveys = state.harness.surveys()
                node.workerinput["multiarch_surveys"] = {url: found.to_data() for url, found in surveys.items()}
        else:
            node.workerinput["multiarch_pins"] = {plan.image: plan.digest for plan in plans}

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if _whole_platforms(config):
            from .scheduling import PlatformScheduling

            return PlatformScheduling(config, log)
        return None


def _whole_platforms(config: pytest.Config) -> bool:
    """Whether xdist hands each worker every item of a platform at once (PlatformScheduling)."""
    dist = config.getvalue("dist")
    return dist == "loadgroup" or (dist == "load" and bool(state_of(config).opts.images))


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = state_of(config)
    lines = [f"multiarch: platforms {state.opts.platforms_text} (from {state.opts.platforms_source})"]
    if not state.opts.images:
        return lines  # no engine needed yet: a run without --image may never touch one
    lines.append(f"multiarch: images {', '.join(state.opts.images)} (from {state.opts.images_source})")
    try:
        for engine in state.harness.engines():
            found = engine.survey()
            lines.append(f"multiarch: engine {engine.description}: {found.describe()}")
            if found.runs:
                lines.append(f"multiarch:   runs {found.modes_line()}")
            if found.error:
                lines.append(f"multiarch:   not asked ({found.error}): modes are guessed from this machine")
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
    several = len(refs) > 1
    for ref in refs:
        try:
            plan = state.plan(ref)
        except MultiarchError as exc:
            params.append(pytest.param(Unresolved(ref, str(exc)), id=_param_id("unresolved", ref, several)))
            continue
        for target in plan.targets:
            stand_in = unavailable(target, state.opts.strict)
            marks = [pytest.mark.skip(reason=stand_in.detail)] if stand_in and stand_in.outcome == SKIPPED else []
            params.append(pytest.param(target, id=_param_id(str(target.platform), ref, several), marks=marks))
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
        targets = [target for target in (_target_of(item) for item in items) if target is not None]
        tested = {target.key for target in targets}
        for target in targets:
            state.selected_tests[target.key] = state.selected_tests.get(target.key, 0) + 1
        built: list[pytest.Item] = []
        for ref in state.refs:
            built.extend(checks_.for_image(session, state, ref, tested))
        state.built = [item.nodeid for item in built]
        items[:0] = built
        # Run in the background as each platform's container comes up (the probe times
        # commands, which nothing may share the machine with, so it runs in its turn).
        checks = [item for item in built if isinstance(item, checks_.CheckItem) and item.target is not None]
        early = [item.check for item in checks if item.check != checks_.PROBE]
        if early:
            state.harness.early_checks = tuple(dict.fromkeys(early))
        if state.is_worker:
            # Longest first: emulated platforms take several times as long as native ones, so
            # handing them out first keeps one worker from finishing long after the other.
            # Every worker sorts alike, so their collections stay identical.
            # Each platform's checks after its tests, as at -n 0 (see below).
            items.sort(key=lambda item: (0 if _emulated(_target_of(item)) else 1, isinstance(item, checks_.CheckItem)))
        else:
            # One platform after the other, its tests and then its checks: the first
            # platform's tests run as soon as its own container is up, while its layers are
            # audited and the next platforms are still being fetched (harness.Harness.prepare).
            rank = {t: i for i, t in enumerate(dict.fromkeys(t for t in map(_target_of, items) if t is not None))}
            items.sort(key=lambda item: _place(item, rank))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """A built-in check that is gone by now was removed without a word (a plugin that
        filters items without calling pytest_deselected): the run did not check it."""
        kept = {item.nodeid for item in session.items}
        dropped = [nodeid for nodeid in state_of(session.config).built if nodeid not in kept]
        session.config.stash[RECORDER].dropped(dropped)


def _place(item: pytest.Item, rank: dict[Target, int]) -> tuple[int, int, int]:
    """Checks of an image as a whole first, then each platform's items (its tests, then
    its checks, whose results the background has made meanwhile), then the rest."""
    target = _target_of(item)
    if target is not None:
        return (1, rank[target], int(isinstance(item, checks_.CheckItem)))
    return (0, 0, 0) if isinstance(item, checks_.CheckItem) else (2, 0, 0)


def _emulated(target: Target | None) -> bool:
    return target is not None and target.mode.emulated


def _target_of(item: pytest.Item) -> Target | None:
    if isinstance(item, checks_.CheckItem):
        return item.target
    callspec = getattr(item, "callspec", None)
    param = callspec.params.get(TARGET_FIXTURE) if callspec is not None else None
    return param if isinstance(param, Target) else None


def _test_name(item: pytest.Item, target: Target, state: State) -> str:
    """The test's name with its platform left out (``t.py::test_x[*]``,
    ``t.py::test_x[good:1.0-*-fast]``): the same on every platform, which pairs them."""
    callspec = getattr(item, "callspec", None)
    ids = callspec.id if callspec is not None else ""
    several = len(_images_for(item, state)) > 1
    mine = _param_id(str(target.platform), target.image, several)
    head = item.nodeid.removesuffix(f"[{ids}]")
    # The target's id is one whole "-"-joined element; pytest puts the ids of fixture
    # parameters before it, so a fixture parameter that looks like a platform comes first.
    at = max(i for i in _whole_at(ids, mine))
    return f"{head}[{ids[:at]}{_param_id('*', target.image, several)}{ids[at + len(mine) :]}]"


def _whole_at(ids: str, element: str) -> Iterator[int]:
    """Where ``element`` stands in ``ids`` as a whole ``-``-separated element."""
    at = ids.find(element)
    while at >= 0:
        end = at + len(element)
        if (at == 0 or ids[at - 1] == "-") and (end == len(ids) or ids[end] == "-"):
            yield at
        at = ids.find(element, at + 1)


# --- running -------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Before the first test: every platform the collected items run on is prepared in the
    background, in the order they run (layers read, image pulled, container started), so
    each platform's tests start as soon as its own container is up. Under xdist the
    controller reads the layers and pulls the images (they are this machine's: the
    workers find them done), and a worker starts containers one platform ahead (see
    pytest_runtest_protocol): which platforms it gets is the scheduler's to say."""
    state = state_of(session.config)
    if session.config.option.collectonly or not state.refs or not session.items or state.is_worker:
        return
    targets = list(dict.fromkeys(t for t in (_target_of(item) for item in session.items) if t is not None))
    if not targets:
        return
    harness = state.harness
    progress = Progress(
        session.config, harness.timings, mode_for(state.opts.progress, session.config), len(state.refs) > 1
    )
    session.config.pluginmanager.register(progress, "multiarch-progress")
    harness.pool.on_wait = harness.planner.on_wait = progress.tick
    harness.prepare(targets)
    last = {_target_of(item): item for item in session.items}
    state.last_items = {id(item): target for target, item in last.items() if target is not None}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """The next item's platform, if it is another, gets its container started meanwhile;
    after the last item of a platform, its container is removed in the background."""
    state = state_of(item.config)
    following = _target_of(nextitem) if nextitem is not None else None
    if following is not None and following != _target_of(item):
        state.harness.prepare_container(following)
    try:
        return (yield)
    finally:
        done = [state.last_items.pop(id(item))] if id(item) in state.last_items else []
        mine = _target_of(item)
        if mine is not None and getattr(item.config, "workerinput", {}).get("multiarch_whole_platforms"):
            # The scheduler hands a worker every item of a platform at once, of every image
            # (plugins/scheduling.py): when the next item is of another platform, each
            # image's container of this one is done here.
            ran = state.worker_targets.setdefault(mine.platform, set())
            ran.add(mine)
            if following is None or following.platform != mine.platform:
                done = sorted(state.worker_targets.pop(mine.platform), key=lambda t: t.key)
        for target in done:
            state.harness.release(target)


# --- results ---------------------------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        _time(item, report.duration)
    if isinstance(item, checks_.CheckItem):
        rec = item.record(report)
        if rec is not None:
            setattr(report, RECORD, rec.to_data())
        if report.when == "setup" and item.target is not None:
            _junit_properties(item, item.target)
        return report
    target = _target_of(item)
    if target is None:
        return report
    state = state_of(item.config)
    detail = ""
    if report.failed:
        detail = one_line(report)
    elif report.skipped and isinstance(report.longrepr, tuple):
        detail = str(report.longrepr[2])
    if report.when == "setup":
        _junit_properties(item, target)
    rec = TestRecord(
        Subject.of(target, state.selected_on(target)),
        _test_name(item, target, state),
        item.nodeid,
        report.outcome,
        detail,
        report.duration,
        item.stash.get(COMMAND_SECONDS, None) if report.when == "call" else None,
    )
    setattr(report, RECORD, rec.to_data())
    return report


def _time(item: pytest.Item, seconds: float) -> None:
    """What the item's call took, in the run's timings: a check that waits for its
    platform's container counts that wait here, as in ``wait``."""
    if isinstance(item, checks_.CheckItem):
        phase = checks_.PROBE if item.check == checks_.PROBE else "checks"
        image, platform = item.ref, str(item.target.platform) if item.target is not None else ""
    else:
        target = _target_of(item)
        if target is None:
            return
        phase, image, platform = "tests", target.image, str(target.platform)
    state_of(item.config).harness.timings.add(image, platform, phase, seconds)


def _junit_properties(item: pytest.Item, target: Target) -> None:
    """Platform, mode and digest as JUnit properties of the test case, for CI dashboards."""
    item.user_properties.extend(
        [("platform", str(target.platform)), ("mode", target.mode.kind), ("digest", target.digest)]
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = state_of(session.config)
    if state.is_worker:  # the controller's harness is closed by its reporter
        try:
            state.close()
        finally:
            timings = state.harness.timings.to_data() if state.has_harness else {}
            worker_output(session.config, session.config.stash[RECORDER].deselected, timings)


def pytest_unconfigure(config: pytest.Config) -> None:
    reporter = config.stash.get(REPORTER, None)
    if reporter is not None:
        reporter.write_junit(config)
        words = reporter.last_words()
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        if words and terminal is not None:
            terminal.write_line(words, red=True, bold=True)
        config.pluginmanager.unregister(reporter)
        del config.stash[REPORTER]
    state = config.stash.get(STATE, None)
    if state is not None:
        try:
            if reporter is not None and not reporter.finished:
                # Stopped before the session began (Ctrl-C while the engine was asked what
                # it runs, say): pytest calls no pytest_sessionfinish, but what was started
                # in the background, and any container of the session, goes all the same.
                reporter.abandon()
        finally:
            state.signals.restore()
