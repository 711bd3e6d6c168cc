"""A check's command runs alone in a container the tests share (harness.container.Turns)."""

from __future__ import annotations

import threading
import time

from harness.container import Turns, TurnsClosed


def _hold(turns: Turns, alone: bool, log: list[str], name: str, entered: threading.Event, leave: threading.Event):
    try:
        with turns.turn(alone) as own:
            log.append(f"{name} in" + ("" if own or not alone else " beside"))
            entered.set()
            leave.wait(5)
            log.append(f"{name} out")
    except TurnsClosed:
        log.append(f"{name} not run")
        entered.set()


def _until(condition, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _start(turns, alone, log, name):
    entered, leave = threading.Event(), threading.Event()
    thread = threading.Thread(target=_hold, args=(turns, alone, log, name, entered, leave), daemon=True)
    thread.start()
    return thread, entered, leave


def test_the_tests_commands_run_beside_each_other():
    turns, log = Turns(), []
    server, server_in, server_leave = _start(turns, False, log, "server")
    assert server_in.wait(5)
    client, client_in, client_leave = _start(turns, False, log, "client")
    assert client_in.wait(5)  # a test's second command does not wait for its first
    client_leave.set()
    client.join(5)
    server_leave.set()
    server.join(5)
    assert log == ["server in", "client in", "client out", "server out"]


def test_a_checks_command_waits_for_the_tests_and_they_for_it():
    turns, log = Turns(), []
    test, test_in, test_leave = _start(turns, False, log, "test")
    assert test_in.wait(5)
    check, check_in, check_leave = _start(turns, True, log, "check")
    assert not check_in.wait(0.2)  # the test's command is running
    test_leave.set()
    assert check_in.wait(5)
    later, later_in, later_leave = _start(turns, False, log, "later")
    assert not later_in.wait(0.2)  # the check's command is running
    check_leave.set()
    assert later_in.wait(5)
    later_leave.set()
    for thread in (test, check, later):
        thread.join(5)
    assert log == ["test in", "test out", "check in", "check out", "later in", "later out"]


def test_a_waiting_check_holds_no_test_back():
    # A test whose first command waits for its second (a server for its client) must not
    # wait on a check queued between them.
    turns, log = Turns(), []
    server, server_in, server_leave = _start(turns, False, log, "server")
    assert server_in.wait(5)
    check, check_in, check_leave = _start(turns, True, log, "check")
    _until(lambda: turns.waiting == 1)
    client, client_in, client_leave = _start(turns, False, log, "client")
    assert client_in.wait(5)
    assert not check_in.is_set()
    client_leave.set()
    server_leave.set()
    assert check_in.wait(5)
    check_leave.set()
    for thread in (server, check, client):
        thread.join(5)
    assert log[-2:] == ["check in", "check out"]


def test_a_check_that_waited_its_patience_out_runs_beside_and_says_so():
    turns, log = Turns(patience=0.2), []
    left, left_in, left_leave = _start(turns, False, log, "left running")  # a test's thread never joined
    assert left_in.wait(5)
    check, check_in, check_leave = _start(turns, True, log, "check")
    assert check_in.wait(5)
    check_leave.set()
    check.join(5)
    left_leave.set()
    left.join(5)
    assert log == ["left running in", "check in beside", "check out", "left running out"]


def test_nothing_starts_in_a_container_that_is_going():
    turns, log = Turns(), []
    test, test_in, test_leave = _start(turns, False, log, "test")
    assert test_in.wait(5)
    check, check_in, _ = _start(turns, True, log, "check")
    _until(lambda: turns.waiting == 1)
    turns.close()  # the test's command timed out: the container is being removed
    assert check_in.wait(5)
    later, later_in, _ = _start(turns, False, log, "later")
    assert later_in.wait(5)
    test_leave.set()
    for thread in (test, check, later):
        thread.join(5)
    assert log == ["test in", "check not run", "later not run", "test out"]
