"""A check's command runs alone in a container the tests share (harness.container.Turns)."""

from __future__ import annotations

import threading
import time

import pytest

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


def _in(turns, alone, log, name):
    """Start a command that is in its turn on return; it leaves when told (:func:`_out`)."""
    thread, entered, leave = _start(turns, alone, log, name)
    assert entered.wait(5)
    return thread, leave


def _out(*running) -> None:
    for thread, leave in running:
        leave.set()
        thread.join(5)


def _start(turns, alone, log, name):
    entered, leave = threading.Event(), threading.Event()
    thread = threading.Thread(target=_hold, args=(turns, alone, log, name, entered, leave), daemon=True)
    thread.start()
    return thread, entered, leave


@pytest.mark.parametrize(
    ("patience", "alone", "said"),
    [
        (10.0, False, "in"),  # a test's second command does not wait for its first (a client, its server)
        (0.2, True, "in beside"),  # a check waits its patience out for a command a test left running
    ],
    ids=["test", "check-past-its-patience"],
)
def test_a_command_that_runs_beside_another(patience, alone, said):
    turns, log = Turns(patience=patience), []
    first = _in(turns, False, log, "first")
    second = _in(turns, alone, log, "second")
    _out(second, first)
    assert log == ["first in", f"second {said}", "second out", "first out"]


def test_a_checks_command_waits_for_the_tests_and_they_for_it():
    turns, log = Turns(), []
    test = _in(turns, False, log, "test")
    check, check_in, check_leave = _start(turns, True, log, "check")
    assert not check_in.wait(0.2)  # the test's command is running
    _out(test)
    assert check_in.wait(5)
    later, later_in, later_leave = _start(turns, False, log, "later")
    assert not later_in.wait(0.2)  # the check's command is running
    _out((check, check_leave))
    assert later_in.wait(5)
    _out((later, later_leave))
    assert log == ["test in", "test out", "check in", "check out", "later in", "later out"]


def test_a_waiting_check_holds_no_test_back():
    # A test whose first command waits for its second (a server for its client) must not
    # wait on a check queued between them.
    turns, log = Turns(), []
    server = _in(turns, False, log, "server")
    check, check_in, check_leave = _start(turns, True, log, "check")
    _until(lambda: turns.waiting == 1)
    client = _in(turns, False, log, "client")
    assert not check_in.is_set()
    _out(client, server)
    assert check_in.wait(5)
    _out((check, check_leave))
    assert log[-2:] == ["check in", "check out"]


def test_nothing_starts_in_a_container_that_is_going():
    turns, log = Turns(), []
    test = _in(turns, False, log, "test")
    check, check_in, _ = _start(turns, True, log, "check")
    _until(lambda: turns.waiting == 1)
    turns.close()  # the test's command timed out: the container is being removed
    assert check_in.wait(5)
    later = _in(turns, False, log, "later")
    _out(test, (check, threading.Event()), later)
    assert log == ["test in", "check not run", "later not run", "test out"]
