"""Work done once per key by whichever thread asks first; the others wait for its result.

A planner's filesystems and a pool's containers are made this way: several threads of a
run (the test in the foreground, the prefetch in the background) may ask for the same
platform's at the same moment, and only one of them must read the layers or start the
container, while different keys proceed side by side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


#: Seconds between two calls of a waiter's ``tick`` (see :func:`waiter`).
TICK = 0.25


def waiter(
    tick: Callable[[], Callable[[], None] | None], waited: Callable[[float], None] | None = None
) -> Callable[[Future[V]], V]:
    """A ``wait`` for :meth:`Once.get` that calls what ``tick()`` gives (if anything) every
    TICK seconds while it waits (a progress display, say), and tells ``waited`` how long
    it waited."""

    def wait(future: Future[V]) -> V:
        start = time.monotonic()
        try:
            while True:
                try:
                    return future.result(timeout=TICK)
                except FutureTimeout:
                    call = tick()
                    if call is not None:
                        call()
        finally:
            if waited is not None:
                waited(time.monotonic() - start)

    return wait


class Once(Generic[K, V]):
    """Results by key, each made once; a failure is kept too unless ``keep_errors`` is off."""

    def __init__(self, *, keep_errors: bool = True) -> None:
        self._lock = threading.Lock()
        self._futures: dict[K, Future[V]] = {}
        self.keep_errors = keep_errors

    def get(
        self,
        key: K,
        make: Callable[[], V],
        wait: Callable[[Future[V]], V] | None = None,
        *,
        keep_error: bool | None = None,
    ) -> V:
        """``key``'s value: made here by ``make`` if no thread has started it, else waited
        for (through ``wait``, which may show what is being waited for). ``keep_error``
        says, for this call, whether a failure of ``make`` is kept; one that is not is
        forgotten before those waiting hear of it (see :meth:`started`)."""
        with self._lock:
            future = self._futures.get(key)
            mine = future is None
            if future is None:
                future = self._futures[key] = Future()
        if not mine:
            return wait(future) if wait is not None else future.result()
        try:
            value = make()
        except BaseException as exc:
            keep = self.keep_errors if keep_error is None else keep_error
            with self._lock:
                if not keep and self._futures.get(key) is future:
                    del self._futures[key]
            future.set_exception(exc)
            raise
        future.set_result(value)
        return value

    def done(self, key: K) -> V | None:
        """``key``'s value if it is made and did not fail; None otherwise (never waits)."""
        with self._lock:
            future = self._futures.get(key)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()

    def started(self, key: K) -> bool:
        with self._lock:
            return key in self._futures

    def forget(self, key: K, value: V | None = None) -> None:
        """Drop ``key`` (only if it holds ``value``, when that is given): the next ask makes it again."""
        with self._lock:
            future = self._futures.get(key)
            if future is None:
                return
            if value is not None and not (future.done() and future.exception() is None and future.result() is value):
                return
            del self._futures[key]

    def values(self) -> list[V]:
        """Every value made so far (failures and those still being made left out)."""
        with self._lock:
            futures = list(self._futures.values())
        return [f.result() for f in futures if f.done() and f.exception() is None]

    def clear(self) -> None:
        with self._lock:
            self._futures.clear()
