"""Background work of a run, a few threads at a time, most urgent first.

A run prepares its platforms ahead of their tests: layers read for the audit, images
brought into the engine, containers started. The first platform's container is what the
first test waits for, so work is taken by rank (the platform's place in the run, then the
kind of work: its container before its audit), not in the order it was asked for.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
from collections.abc import Callable


class Prefetcher:
    def __init__(self, threads: int, name: str = "multiarch-prefetch") -> None:
        self.threads = max(1, threads)
        self.name = name
        self._queue: queue.PriorityQueue[tuple[tuple[int, ...], int, Callable[[], object] | None]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, rank: tuple[int, ...], work: Callable[[], object]) -> None:
        """Do ``work`` in the background, before anything of a higher ``rank``. Its failure
        is dropped: whoever needs its result asks for it again and meets it then."""
        with self._lock:
            if self._closed:
                return
            self._queue.put((rank, next(self._order), work))
            if len(self._workers) < self.threads:
                # Daemon threads: a harness nobody closed must not hold the interpreter at
                # exit; close() is what waits for them.
                worker = threading.Thread(target=self._work, name=f"{self.name}-{len(self._workers)}", daemon=True)
                self._workers.append(worker)
                worker.start()

    def _work(self) -> None:
        while True:
            _, _, work = self._queue.get()
            if work is None:
                return
            # A failure is the asker's to meet; an interrupt of the thread that made what
            # this waited for comes through as one too.
            with contextlib.suppress(BaseException):
                work()

    def close(self) -> None:
        """Drop what is queued and wait for what runs."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        for _ in workers:
            self._queue.put(((-1,), -next(self._order), None))
        for worker in workers:
            worker.join()
