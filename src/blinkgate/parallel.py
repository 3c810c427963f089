"""Ordered work across worker processes, behind the ``--jobs`` options of check, eval,
simulate-attack and train-eyes."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import BatchStopped

# Items handed to the pool ahead of the one whose result is awaited, per worker: enough to keep
# every worker busy, few enough that a crash has little to redo.
AHEAD_PER_JOB = 2
# Inputs in a row whose worker died, each run alone, before the run gives up: the workers
# themselves cannot live (an initializer that kills them, no memory at all), not one bad input.
MAX_CRASHES_IN_A_ROW = 3

_END = object()


def imap_processes(fn: Callable[[Any], Any], items: Iterable[Any], jobs: int,
                   initializer: Callable[..., object] | None = None, initargs: tuple = (),
                   on_crash: Callable[[Any, str], Any] | None = None) -> Iterator[Any]:
    """``fn(item)`` for each item, in input order, from ``jobs`` worker processes.

    The workers are spawned, not forked: dlib's and OpenCV's state does not survive a fork
    reliably. It is an executor, not a ``multiprocessing.Pool``: a worker that dies (killed for
    memory, a crash in native code) is noticed, where a Pool respawns it and waits for its
    result forever. Without ``on_crash`` that raises BatchStopped. With it, the inputs that
    were under way are run again one at a time in a fresh worker, the one whose worker dies
    again gets ``on_crash(item, reason)`` as its result, and the rest go on: one corrupt video
    must not end a batch of thousands. Leaving early (an error, Ctrl-C) cancels what has not
    started.
    """
    from concurrent.futures.process import BrokenProcessPool

    todo = iter(items)
    pending: deque = deque()  # (item, future), in input order
    streak = [0]  # inputs in a row whose worker died
    pool = _pool(jobs, initializer, initargs)
    try:
        while True:
            while len(pending) < AHEAD_PER_JOB * jobs and (item := next(todo, _END)) is not _END:
                pending.append((item, _submit(pool, fn, item)))
            if not pending:
                return
            item, future = pending[0]
            try:
                result = future.result()
            except BrokenProcessPool as err:
                if on_crash is None:
                    raise BatchStopped(f"a worker process died ({err}); rerun with fewer --jobs or without") from None
                pool.shutdown(wait=True, cancel_futures=True)
                yield from _one_at_a_time(fn, list(pending), initializer, initargs, on_crash, streak)
                pending.clear()
                pool = _pool(jobs, initializer, initargs)
                continue
            pending.popleft()
            streak[0] = 0
            yield result
    except BaseException:
        # Ctrl-C, SIGTERM or a caller that stopped reading: nobody wants the inputs under way,
        # each of which can take many seconds. shutdown() alone would wait for them.
        _terminate_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _one_at_a_time(fn, pending: list, initializer, initargs, on_crash, streak: list[int]) -> Iterator[Any]:
    """The results of ``pending`` after a worker died: those already done as they are, the
    others run alone, so a worker that dies again names its input. ``streak[0]`` counts the
    inputs in a row whose worker died, across calls."""
    from concurrent.futures.process import BrokenProcessPool

    pool = None
    try:
        for item, future in pending:
            if future.done() and not future.cancelled() and future.exception() is None:
                streak[0] = 0  # an input that worked: the crashes around it are not in a row
                yield future.result()
                continue
            pool = pool or _pool(1, initializer, initargs)
            try:
                result = _submit(pool, fn, item).result()
            except BrokenProcessPool:
                pool.shutdown(wait=True, cancel_futures=True)
                pool, streak[0] = None, streak[0] + 1
                if streak[0] >= MAX_CRASHES_IN_A_ROW:
                    raise BatchStopped(f"a worker process died on each of {streak[0]} inputs in a row; rerun with "
                                       "fewer --jobs or without") from None
                yield on_crash(item, "its worker process died (a crash in native code, or killed for memory)")
                continue
            streak[0] = 0
            yield result
    except BaseException:
        if pool is not None:
            _terminate_workers(pool)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _pool(jobs: int, initializer, initargs):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_initialise,
                               initargs=(initializer, initargs))


def _submit(pool, fn, item):
    """A future for ``fn(item)``; a pool already broken gives a future that says so."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    try:
        return pool.submit(_call, fn, item)
    except BrokenProcessPool as err:
        future: Future = Future()
        future.set_exception(err)
        return future


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
