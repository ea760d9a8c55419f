"""``slewdark predict --workers N | --scheduler ADDRESS``: a batch of exposures on a Dask cluster.

One exposure is one task (:func:`slewdark.inference.predict.predict_or_skip`, the same
function the in-process batch runs, so the masks are the same). Each worker
loads the model once, when it joins, through a worker plugin
(:class:`ModelPlugin`), and sets its torch threads; a worker that dies and is
restarted by its nanny loads it again. The client records every outcome in
``DIR/manifest.csv`` as tasks finish and counts exposures on a progress bar.

A worker that dies (killed, out of memory) loses only its task: the scheduler
runs it again on another worker, until the task has been on
``distributed.scheduler.allowed-failures`` workers that died (Dask's default
3); then the input is recorded as failed (``KilledWorker``) and the batch goes
on. A task that raises an unexpected error is retried :data:`TASK_RETRIES`
times, then recorded as failed with its error line. Importing this module
imports Dask: ``slewdark.inference.predict`` does not, and the command line imports this
module only for ``--workers`` or ``--scheduler``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from distributed import Client, Future, LocalCluster, WorkerPlugin, as_completed, get_worker
from distributed.scheduler import KilledWorker
from tqdm import tqdm

from slewdark.errors import SlewdarkError
from slewdark.inference.manifest import FAILED, Manifest, ManifestRow
from slewdark.inference.predict import (
    PredictOptions,
    PredictReport,
    load_unet,
    manifest_row,
    predict_or_skip,
    prepare_batch,
    prepare_torch,
    sigterm_raises,
)
from slewdark.models.checkpoint import UnetModel
from slewdark.models.device import resolve_device
from slewdark.revision import code_revision

log = logging.getLogger(__name__)

PLUGIN_NAME = "slewdark-model"
TASK_RETRIES = 1
"""Reruns of a task that raised an unexpected error (a dead worker is the scheduler's to count)."""
CONNECT_TIMEOUT = "30s"


class ModelPlugin(WorkerPlugin):
    """Loads the model once per worker process and sets its torch threads.

    Parameters
    ----------
    model
        Checkpoint path or registry URI, as readable from the worker.
    device
        ``auto``, ``cpu`` or ``cuda``, resolved on the worker.
    tracking_uri
        Tracking store of a registry URI.
    num_threads
        Torch CPU threads of the worker (0 keeps torch's default).
    """

    def __init__(self, model: str, device: str, tracking_uri: str | None, num_threads: int) -> None:
        self.model = model
        self.device = device
        self.tracking_uri = tracking_uri
        self.num_threads = num_threads
        self.unet: UnetModel | None = None

    def setup(self, worker: object) -> None:
        """Load the model on the worker's device (called once, when the worker starts or joins)."""
        prepare_torch(self.num_threads)
        self.unet = load_unet(self.model, resolve_device(self.device), self.tracking_uri)

    def __getstate__(self) -> dict[str, object]:
        """The settings only: each worker loads its own network."""
        return {**self.__dict__, "unet": None}


def worker_model() -> UnetModel:
    """The model that :class:`ModelPlugin` loaded in this worker process."""
    unet = get_worker().plugins[PLUGIN_NAME].unet
    if unet is None:
        raise RuntimeError(f"{PLUGIN_NAME} plugin has not loaded the model on this worker")
    return unet


def predict_task(path: Path, out: Path, options: PredictOptions, git_rev: str) -> ManifestRow:
    """One exposure on a worker, with the worker's model (the task the batch submits)."""
    return predict_or_skip(path, out, worker_model(), options, git_rev)


def threads_per_worker(workers: int) -> int:
    """Torch threads of each of ``workers`` local workers, so that together they fill the cores."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


@contextlib.contextmanager
def cluster_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Client]:
    """A client of a new local cluster of ``workers`` processes, or of the cluster at ``scheduler``.

    Each local worker runs one exposure at a time (one Dask thread). The
    dashboard's address is logged. Leaving the block closes the client, and
    the local cluster with its workers.

    Raises
    ------
    SlewdarkError
        When no scheduler answers at ``scheduler``.
    """
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            local = LocalCluster(n_workers=workers, threads_per_worker=1, silence_logs=logging.ERROR)
            cluster = stack.enter_context(local)
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(scheduler, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError, ValueError) as error:
                raise SlewdarkError(f"{scheduler}: no Dask scheduler answers ({error})") from None
        _log_dashboard(client)
        yield client


def _log_dashboard(client: Client) -> None:
    """Log where the scheduler's dashboard is, or that it has none; its pages need bokeh."""
    if "dashboard" not in client.scheduler_info().get("services", {}):
        log.info("Dask scheduler %s serves no dashboard", client.scheduler.address)
        return
    note = "" if importlib.util.find_spec("bokeh") else " (its pages need bokeh: pip install bokeh)"
    log.info("Dask dashboard: %s%s", client.dashboard_link, note)


def predict_on_cluster(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    client: Client,
    unet: UnetModel,
    device: str,
    tracking_uri: str | None,
    options: PredictOptions,
) -> PredictReport:
    """Predict a batch of exposures on a Dask cluster: one task per exposure.

    As :func:`slewdark.inference.predict.predict_files` (the same planning, skips,
    manifest and report), with the work on the cluster's workers.

    Parameters
    ----------
    paths
        Input FITS files, readable from the workers at the same paths.
    out_dir
        Output folder, writable from the workers at the same path.
    client
        Client of the cluster (:func:`cluster_client`).
    unet
        The model, loaded here: its ``source`` is what the workers load, its
        lineage fills the rows of inputs whose workers died.
    device
        ``auto``, ``cpu`` or ``cuda``, resolved on each worker.
    tracking_uri
        Tracking store of a registry URI.
    options
        As the in-process batch; ``num_threads`` are each worker's torch threads.

    Returns
    -------
    PredictReport
        As :func:`~slewdark.inference.predict.predict_files`.

    Raises
    ------
    SlewdarkError
        When the products cannot be planned, the manifest is not one, or a worker cannot load the model.
    """
    plan = prepare_batch(paths, out_dir)
    manifest = Manifest.load(out_dir)
    plugin = ModelPlugin(unet.source, device, tracking_uri, options.num_threads)
    client.register_plugin(plugin, name=PLUGIN_NAME)
    git_rev = code_revision()
    start = time.perf_counter()
    futures = {
        client.submit(predict_task, path, out, options, git_rev, retries=TASK_RETRIES, pure=False): path
        for path, out in plan.items()
    }
    rows: dict[Path, ManifestRow] = {}
    with sigterm_raises():
        for future in tqdm(as_completed(futures), total=len(futures), desc="predict", unit="exposure"):
            path = futures[future]
            rows[path] = _task_row(future, path, unet, time.perf_counter() - start)
            manifest.record(rows[path])
    report = PredictReport()
    for path, out in plan.items():
        report.add(path, out, rows[path])
    return report


def _task_row(future: Future, path: Path, unet: UnetModel, seconds: float) -> ManifestRow:
    """The manifest row a finished task returned, or a failed row saying why the task did not return one."""
    try:
        return future.result()
    except KilledWorker:
        error = f"{path}: its task killed the workers that ran it (distributed.scheduler.allowed-failures)"
    except Exception as problem:  # raised on a worker, after TASK_RETRIES reruns: the batch goes on
        lines = str(problem).strip().splitlines()
        error = f"{path}: {type(problem).__name__}: {lines[0] if lines else 'no message'}"
    log.error("skipped %s", error)
    return manifest_row(unet, path, inputsha="", status=FAILED, error=error, seconds=seconds, detectors=0)
