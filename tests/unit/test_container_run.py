"""What Container.run makes of an exec's end, against an engine that answers as dockerd does
(no engine here: the answers are dockerd's, as seen in the engine tier)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from harness import container as container_mod
from harness.container import CommandResult, CommandTimeout, Container, ContainerGone, Turns

SETNS = (
    b"OCI runtime exec failed: exec failed: unable to start container process: error executing setns process: "
    b"signal: broken pipe: unknown\r\n"
)
FORMAT = b'OCI runtime exec failed: exec failed: unable to start container process: exec: "/app": exec format error\r\n'


class Engine:
    """The container as the engine sees it: running until ``stops_after`` reloads (the engine
    marks a killed container stopped a moment after the kill ended its execs)."""

    def __init__(self, exit_code: int | None, output: bytes, stops_after: int | None = None, takes: float = 0.0):
        self.exit_code, self.output, self.stops_after, self.takes = exit_code, output, stops_after, takes
        self.reloads = 0
        self.started = threading.Event()
        self.status = "running"
        self.attrs = {"State": {"ExitCode": 137, "OOMKilled": False}}
        self.id = "c0ffee"
        self.client = SimpleNamespace(api=self)
        self.base_url = "http+docker://localhost"

    def reload(self) -> None:
        self.reloads += 1
        if self.stops_after is not None and self.reloads >= self.stops_after:
            self.status = "exited"

    def exec_create(self, cid: str, argv: list[str], user: str = "") -> dict[str, str]:
        return {"Id": "e1"}

    def exec_inspect(self, exec_id: str) -> dict[str, int | None]:
        return {"ExitCode": self.exit_code}


def container_on(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Container:
    def exec_output(api: Engine, exec_id: str) -> tuple[bytes | None, bytes | None]:
        engine.started.set()
        time.sleep(engine.takes)
        return engine.output, None

    monkeypatch.setattr(container_mod, "exec_output", exec_output)
    made = Container.__new__(Container)
    made.pinned, made.platform = "img@sha256:" + "a" * 64, "linux/amd64"
    made._local_kernel, made._cpu_file, made._turns = False, None, Turns()
    made._tc = SimpleNamespace(get_wrapped_container=lambda: engine, stop=lambda force: engine.reload())
    return made


@pytest.mark.parametrize(
    "said",
    [SETNS, b"cannot exec in a stopped state: unknown\r\n", b"task 3b28577141fe not found: not found\r\n"],
    ids=["setns", "stopped-state", "task-not-found"],
)
def test_an_exec_the_runtime_could_not_start_in_a_container_being_killed_is_the_containers_stop(said, monkeypatch):
    engine = Engine(126, said, stops_after=3)  # the engine says "exited" only at the third look
    with pytest.raises(ContainerGone, match=r"the container of linux/amd64 stopped during the run \(exited"):
        container_on(engine, monkeypatch).run(["uname", "-m"])


@pytest.mark.parametrize("said", [FORMAT, b"bash: line 1: ./run.sh: Permission denied\n"], ids=["runtime", "shell"])
def test_a_file_the_image_cannot_run_is_the_commands_answer_at_once(said, monkeypatch):
    engine = Engine(126, said, stops_after=None)
    got = container_on(engine, monkeypatch).run(["/app"])
    assert (got.exit_code, got.stdout) == (126, said.decode())
    assert engine.reloads == 1  # looked once, waited for nothing


def test_an_illegal_instruction_is_the_commands_answer_at_once(monkeypatch):
    engine = Engine(132, b"", stops_after=None)
    assert container_on(engine, monkeypatch).run(["/app"]).exit_code == 132
    assert engine.reloads == 1


def test_a_command_waiting_beside_one_that_timed_out_does_not_start(monkeypatch):
    engine = Engine(0, b"x86_64\n", takes=1.0)
    running = container_on(engine, monkeypatch)
    raised: dict[str, BaseException] = {}

    def run(name: str, cmd: list[str], **kw: object) -> None:
        try:
            running.run(cmd, **kw)  # type: ignore[arg-type]
        except (CommandTimeout, ContainerGone) as exc:
            raised[name] = exc

    slow = threading.Thread(target=run, args=("test", ["sleep", "9"]), kwargs={"timeout": 0.3})
    slow.start()
    assert engine.started.wait(5)
    checker = threading.Thread(target=run, args=("check", ["uname", "-m"]), kwargs={"alone": True})
    checker.start()
    slow.join(5)
    checker.join(5)
    assert isinstance(raised["test"], CommandTimeout)
    said = "$ uname -m: the container of linux/amd64 was being removed; the command did not start"
    assert str(raised["check"]) == said


def test_alone_reaches_the_container_through_the_harness_and_its_pool():
    from harness.engine import NATIVE, Mode
    from harness.planner import Target
    from harness.platform import Platform
    from harness.pool import ContainerPool
    from harness.session import Harness

    seen: list[bool] = []

    class Running:
        def run(self, cmd, *, user, timeout, alone):
            seen.append(alone)
            return CommandResult(tuple(cmd), 0, "", "", 0.01)

    pool = ContainerPool.__new__(ContainerPool)
    pool.timeout = 60.0
    pool._engine_for = lambda platform: SimpleNamespace(exec_cost=lambda: (None, None))
    harness = Harness.__new__(Harness)
    harness.pool = pool
    target = Target("img", "sha256:" + "a" * 64, Platform.parse("linux/amd64"), "sha256:" + "b" * 64, Mode(NATIVE, "t"))
    harness.run(target, ["uname", "-m"], container=Running(), alone=True)
    harness.run(target, ["true"], container=Running())
    assert seen == [True, False]
