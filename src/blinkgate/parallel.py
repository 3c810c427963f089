"""Ordered work across worker processes, behind the ``--jobs`` options of check, eval,
simulate-attack and train-eyes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from .errors import BlinkgateError


def imap_processes(fn: Callable[[Any], Any], items: Iterable[Any], jobs: int,
                   initializer: Callable[..., object] | None = None, initargs: tuple = ()) -> Iterator[Any]:
    """``fn(item)`` for each item, in input order, from ``jobs`` worker processes.

    The workers are spawned, not forked: dlib's and OpenCV's state does not survive a fork
    reliably. It is an executor, not a ``multiprocessing.Pool``: a worker that dies (killed for
    memory, a crash in native code) raises a BlinkgateError here, where a Pool respawns it and
    waits for its result forever. Leaving early (an error, Ctrl-C) cancels what has not started.
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_initialise,
                               initargs=(initializer, initargs))
    try:
        yield from pool.map(partial(_call, fn), items)
    except BrokenProcessPool as err:
        raise BlinkgateError(f"a worker process died ({err}); rerun with fewer --jobs or without") from None
    except BaseException:
        # Ctrl-C, SIGTERM or a caller that stopped reading: nobody wants the inputs under way,
        # each of which can take many seconds. shutdown() alone would wait for them.
        _terminate_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# An initializer's error, in a worker process. Raised from the initializer, it kills the worker,
# and the pool says only "terminated abruptly": `check --jobs 2 --db bad.db` advised fewer --jobs.
_INIT_ERROR: list[Exception] = []


def _initialise(initializer: Callable[..., object] | None, initargs: tuple) -> None:
    try:
        if initializer is not None:
            initializer(*initargs)
    except Exception as err:  # raised by every item instead, so the caller sees the real error
        _INIT_ERROR.append(err)


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    if _INIT_ERROR:
        raise _INIT_ERROR[0]
    return fn(item)


def _terminate_workers(pool) -> None:
    # ProcessPoolExecutor.terminate_workers() is Python 3.14+; before, the processes are private.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
