"""Work across processes for the --jobs options: ordered results, and no hang on a dead worker."""

import pytest

from blinkgate.errors import BlinkgateError
from blinkgate.parallel import imap_processes
from fakes import die_in_worker, square


def test_results_come_back_in_input_order():
    assert list(imap_processes(square, range(7), jobs=2)) == [x * x for x in range(7)]


def test_a_worker_that_dies_raises_instead_of_hanging():
    # multiprocessing.Pool respawns such a worker and waits for its result forever.
    with pytest.raises(BlinkgateError, match="worker process died"):
        list(imap_processes(square, range(4), jobs=2, initializer=die_in_worker))
    with pytest.raises(BlinkgateError, match="worker process died"):
        list(imap_processes(die_in_worker, range(4), jobs=2))
