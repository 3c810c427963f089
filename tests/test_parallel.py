"""Work across processes for the --jobs options: ordered results, no hang on a dead worker, and a
quick stop."""

import time

import pytest

from blinkgate.errors import BatchStopped, BlinkgateError
from blinkgate.parallel import imap_processes
from fakes import die_in_worker, refuse_database, sleep_then_square, square, square_unless_3


def test_results_come_back_in_input_order():
    assert list(imap_processes(square, range(7), jobs=2)) == [x * x for x in range(7)]


def test_a_worker_that_dies_raises_instead_of_hanging():
    # multiprocessing.Pool respawns such a worker and waits for its result forever.
    with pytest.raises(BlinkgateError, match="worker process died"):
        list(imap_processes(square, range(4), jobs=2, initializer=die_in_worker))
    with pytest.raises(BlinkgateError, match="worker process died"):
        list(imap_processes(die_in_worker, range(4), jobs=2))


def test_a_worker_that_cannot_start_says_why():
    """`check --jobs 2 --db bad.db` said "a worker process died ...; rerun with fewer --jobs"."""
    with pytest.raises(BlinkgateError, match="not a blinkgate database"):
        list(imap_processes(square, range(4), jobs=2, initializer=refuse_database))


def test_stopping_early_does_not_wait_for_the_inputs_under_way():
    """Ctrl-C in `check --jobs 2` waited 7-18 s for the clips in progress to finish."""
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _ in imap_processes(sleep_then_square, [0, 60, 60], jobs=2):
            raise KeyboardInterrupt  # the user presses Ctrl-C after the first result
    assert time.monotonic() - started < 30  # not the 60 s the inputs under way would take


def test_with_on_crash_an_input_whose_worker_dies_is_its_own_error_and_the_rest_go_on():
    """`check --jobs 2` on a batch with one file that crashes a decoder ended the whole batch."""
    out = list(imap_processes(square_unless_3, range(9), jobs=2, on_crash=lambda x, why: f"crashed {x}: {why}"))
    assert out[:3] == [0, 1, 4] and out[4:] == [x * x for x in range(4, 9)]
    assert out[3].startswith("crashed 3: its worker process died")


def test_with_on_crash_workers_that_cannot_live_still_end_the_run():
    """Every input crashing is no bad input but workers that die: the run must not crawl on."""
    crashed = []
    with pytest.raises(BatchStopped, match="died on each of 3 inputs in a row"):  # exit 1: stopped, not done
        for _ in imap_processes(square, range(20), jobs=1, initializer=die_in_worker,
                                on_crash=lambda x, why: crashed.append(x)):
            pass
    assert crashed == [0, 1]


def test_with_on_crash_inputs_done_before_the_crash_break_a_streak_of_crashes():
    """Inputs that finished before a worker died sit between those run again alone; three
    corrupt files among five ended the run as "3 inputs in a row"."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from blinkgate.parallel import _one_at_a_time

    def future(result=None, error=None):
        f = Future()
        f.set_exception(error) if error else f.set_result(result)
        return f

    died = BrokenProcessPool("died")
    pending = [(3, future(error=died)), (1, future(1)), (3, future(error=died)), (2, future(4)), (3, future(error=died))]
    out = list(_one_at_a_time(square_unless_3, pending, None, (), lambda x, why: f"crashed {x}", [0]))
    assert out == ["crashed 3", 1, "crashed 3", 4, "crashed 3"]
