"""Local worker processes for ``--workers N`` that never outlive the command that started them.

``concurrent.futures.ProcessPoolExecutor`` workers finish their current task when their parent
dies: after ``kill -9`` of a long ``bilevel reproduce`` they would keep computing (and writing
checkpoints) for up to a whole cell, competing with the re-run that resumes it. Each worker
here watches its parent and exits as soon as the parent is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["process_pool"]

_POLL_SECONDS = 0.5


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(_POLL_SECONDS)
        if os.getppid() != parent:  # re-parented: the command was killed
            os._exit(1)


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: start the watchdog thread (a daemon, so normal shutdown is unchanged)."""
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="bilevel-parent-watchdog").start()


def process_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned local processes (torch and forked threads do not mix) that exit with
    this process, whatever kills it.

    Parameters
    ----------
    workers : int
        Number of processes, >= 1.

    Returns
    -------
    concurrent.futures.ProcessPoolExecutor
    """
    if isinstance(workers, bool) or not isinstance(workers, int):
        raise TypeError(f"expected an int number of workers, got {type(workers).__name__}")
    if workers < 1:
        raise ValueError(f"expected workers >= 1, got {workers}")
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_exit_with_parent, initargs=(os.getpid(),))
