"""A check's command runs alone in a container the tests share (harness.container.Turns)."""

from __future__ import annotations

import threading
import time

from harness.container import Turns


def _hold(turns: Turns, alone: bool, log: list[str], name: str, entered: threading.Event, leave: threading.Event):
    with turns.turn(alone):
        log.append(f"{name} in")
        entered.set()
        leave.wait(5)
        log.append(f"{name} out")


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
    time.sleep(0.05)
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
