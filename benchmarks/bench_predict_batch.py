"""Exposures per hour of ``slewdark predict --workers N`` with 1 and 2 local Dask workers, on the CPU.

Run: ``.venv/bin/python benchmarks/bench_predict_batch.py [--exposures 4] [--detectors 1]`` (or
``benchmarks/run.py predict_batch``). Writes, in a temporary folder, ``--exposures``
slew darks of ``--detectors`` 2040x2040 detectors each (``DETxy.SCI`` and
``DETxy.DQ``, as ``bench_predict_memory.py``) and the model of
``benchmarks/bench_predict.py`` (``models/unet.pt`` when trained, else the
``params.yaml`` architecture randomly initialised) as a checkpoint. For 1 and
then 2 workers it starts the local cluster of ``slewdark predict --workers``
(:func:`slewdark.inference.batch.cluster_client`, torch threads per worker
:func:`slewdark.inference.batch.threads_per_worker`), predicts one exposure to load the
model on the workers, then times :func:`slewdark.inference.batch.predict_on_cluster` on
the batch (cluster start and model load excluded: they are paid once per
batch). Prints exposures per hour for each, their ratio, and the peak resident
memory of every worker process (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from astropy.io import fits

from bench_predict import model_for
from bench_predict_memory import DETECTORS, detector_hdus
from slewdark.inference.batch import cluster_client, predict_on_cluster, threads_per_worker
from slewdark.inference.predict import PredictOptions, load_unet
from slewdark.io.fits import write_fits_atomic
from slewdark.models.checkpoint import checkpoint_payload


def write_batch(folder: Path, n_exposures: int, detectors: tuple[str, ...]) -> list[Path]:
    """``n_exposures`` slew darks without a previous exposure (it is optional)."""
    paths = []
    for i in range(n_exposures):
        path = folder / f"bench{i:03d}.fits"
        header = fits.Header({"OBS_ID": path.stem, "EXPTIME": 100.0})
        write_fits_atomic(path, header, detector_hdus(detectors, 0.0, seed=i, with_dq=True))
        paths.append(path)
    return paths


def peak_rss_mib() -> float:
    """Peak resident memory of the calling process (a worker, through ``client.run``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def exposures_per_hour(
    exposures: list[Path], checkpoint: Path, workers: int, out: Path
) -> tuple[float, list[float]]:
    """Throughput of a batch on ``workers`` local workers, and each worker's peak RSS in MiB."""
    unet = load_unet(checkpoint, torch.device("cpu"))
    options = PredictOptions(num_threads=threads_per_worker(workers))
    with cluster_client(workers=workers) as client:
        predict_on_cluster(exposures[:1], out / "warm-up", client, unet, "cpu", None, options)
        start = time.perf_counter()
        report = predict_on_cluster(exposures, out / "masks", client, unet, "cpu", None, options)
        seconds = time.perf_counter() - start
        rss = sorted(client.run(peak_rss_mib).values())
    if report.failed or len(report.written) != len(exposures):
        raise RuntimeError(f"the batch did not write every mask: {report.failed}")
    return len(exposures) / seconds * 3600, rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exposures", type=int, default=4, help="exposures in the batch")
    parser.add_argument("--detectors", type=int, default=1, choices=range(1, 17), metavar="1..16")
    parser.add_argument("--model", type=Path, default=Path("models/unet.pt"), help="checkpoint")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="architecture without one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        exposures = write_batch(folder, args.exposures, DETECTORS[: args.detectors])
        unet = model_for(args.model, args.params, torch.device("cpu"))
        checkpoint = folder / "unet.pt"
        torch.save(checkpoint_payload(unet), checkpoint)
        rates = {}
        for workers in (1, 2):
            rate, rss = exposures_per_hour(exposures, checkpoint, workers, folder / f"workers{workers}")
            rates[workers] = rate
            threads = threads_per_worker(workers)
            print(f"{workers} worker(s) x {threads} torch thread(s): {rate:.0f} exposures/h "
                  f"({args.exposures} exposures of {args.detectors} detector(s), {unet.source} on CPU); "
                  f"peak RSS per worker {', '.join(f'{r:.0f}' for r in rss)} MiB")  # fmt: skip
    print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f} x the exposures per hour")
    return 0


if __name__ == "__main__":
    sys.exit(main())
