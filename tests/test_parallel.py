"""Work across processes for the --jobs options: ordered results, no hang on a dead worker, and a
quick stop."""

import time

import pytest

from blinkgate.errors import BlinkgateError
from blinkgate.parallel import imap_processes
from fakes import die_in_worker, refuse_database, sleep_then_square, square


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
