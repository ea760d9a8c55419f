"""Independent pieces on a real local Dask cluster give what one process gives, in order."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from slewdark.errors import SlewdarkError
from slewdark.ops.parallel import map_ordered, resolve_workers

log = logging.getLogger("slewdark.tests.parallel")


def square_after_a_pause(value: int) -> int:
    """A piece whose later items finish first on two workers."""
    np.linalg.svd(np.random.default_rng(value).normal(size=(200 - 40 * value, 200 - 40 * value)))
    log.info("piece %d done", value)
    return value * value


def fail_on_three(value: int) -> int:
    """A piece that fails for one input, with the error a stage raises."""
    if value == 3:
        raise SlewdarkError(f"piece {value}: bad input")
    return value


def blas_threads(_: int) -> list[int]:
    """The BLAS/OpenMP thread counts a piece sees."""
    return [pool["num_threads"] for pool in threadpool_info()]


def test_results_come_back_in_order_with_the_workers_log_records(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="slewdark"):
        assert map_ordered(square_after_a_pause, [0, 1, 2, 3, 4], 2, "test", "piece") == [0, 1, 4, 9, 16]
    assert {f"piece {i} done" for i in range(5)} <= {record.getMessage() for record in caplog.records}


def test_a_failing_piece_raises_its_own_error_on_a_worker_as_in_process() -> None:
    for workers in (1, 2):
        with pytest.raises(SlewdarkError, match="piece 3: bad input"):
            map_ordered(fail_on_three, [1, 2, 3, 4], workers, "test", "piece")


def test_every_piece_runs_with_one_blas_thread_in_process_and_on_workers() -> None:
    for workers in (1, 2):
        for counts in map_ordered(blas_threads, [0, 1], workers, "test", "piece"):
            assert counts and set(counts) == {1}


def test_worker_count_is_capped_by_pieces_and_zero_means_every_core() -> None:
    cores = len(os.sched_getaffinity(0))
    assert resolve_workers(0, 1000) == cores
    assert resolve_workers(8, 3) == 3
    assert resolve_workers(2, 0) == 1
