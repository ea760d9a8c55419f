"""Independent pieces of a stage on a local Dask cluster, with the same results as in one process.

The simulate stages make their exposures and the ``cluster`` stage fits its
groups one by one; each piece is seeded on its own, so they can run side by
side. :func:`map_ordered` runs them on ``workers`` local Dask processes (one
task each at a time) and returns the results in the order of the pieces.

Each piece runs with one BLAS/OpenMP thread, in this process as on a worker:
sums then add up in the same order whatever the number of workers, so the
products are the same with ``workers: 1`` and ``workers: 8``. The workers' log
records of ``slewdark`` are forwarded to this process; a piece that raises
raises here, with its own error.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from threadpoolctl import threadpool_limits
from tqdm import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")

LOGGER = "slewdark"


def resolve_workers(workers: int, n_items: int) -> int:
    """Processes to start: ``workers`` (0: one per usable core), at most one per piece, at least 1."""
    wanted = workers or len(os.sched_getaffinity(0))
    return max(1, min(wanted, n_items))


class OneThreaded(Generic[Item, Result]):
    """``fn`` run with one BLAS/OpenMP thread and this process's ``slewdark`` log level (picklable).

    Parameters
    ----------
    fn
        Function of one piece; importable by the workers (defined at a module's top level).
    log_level
        Level of the ``slewdark`` logger while it runs (a spawned worker starts at WARNING).
    """

    def __init__(self, fn: Callable[[Item], Result], log_level: int) -> None:
        self.fn = fn
        self.log_level = log_level

    def __call__(self, item: Item) -> Result:
        """Run ``fn`` on ``item``."""
        logging.getLogger(LOGGER).setLevel(self.log_level)
        with threadpool_limits(limits=1):
            return self.fn(item)


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Only warnings and errors of logger ``name`` inside the block (Dask's start and stop lines)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def map_ordered(
    fn: Callable[[Item], Result], items: Sequence[Item], workers: int, desc: str, unit: str
) -> list[Result]:
    """``fn`` of every item, in order: in this process or on a local Dask cluster.

    Parameters
    ----------
    fn
        Function of one piece, defined at a module's top level; its argument and
        result are pickled to and from the workers.
    items
        The pieces.
    workers
        Local worker processes (0: one per usable core); one process, or a single
        piece, runs here without a cluster.
    desc, unit
        Progress bar label and unit.

    Returns
    -------
    list
        ``fn(item)`` for each item, in the order of ``items``.
    """
    task = OneThreaded(fn, logging.getLogger(LOGGER).getEffectiveLevel())
    n_workers = resolve_workers(workers, len(items))
    if n_workers == 1:
        return [task(item) for item in tqdm(items, desc=desc, unit=unit)]
    from distributed import Client, LocalCluster, as_completed

    logging.getLogger(LOGGER).info("%s: %d pieces on %d local Dask workers", desc, len(items), n_workers)
    with (
        quiet_logger("distributed"),
        LocalCluster(n_workers=n_workers, threads_per_worker=1, silence_logs=logging.ERROR) as cluster,
        Client(cluster) as client,
    ):
        client.forward_logging(LOGGER)
        futures = client.map(task, items, pure=False)
        for _ in tqdm(as_completed(futures), total=len(futures), desc=desc, unit=unit):
            pass
        return client.gather(futures)
