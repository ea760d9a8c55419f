"""Local Dask workers against one process: the training simulation made both ways.

Run: ``.venv/bin/python benchmarks/bench_workers.py [--exposures 8]``. Simulates the
``simulate`` set of ``params.yaml`` (its detectors, ``--exposures`` exposures) into a
temporary folder in this process (``workers: 1``), then on one local Dask worker
per usable core (``workers: 0``, the default), and prints both wall times, their
ratio, and whether every file came out byte for byte the same. The start of the
cluster and of its worker processes is inside the timed figure.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

from slewdark.config import load_params
from slewdark.ops.parallel import resolve_workers
from slewdark.simulate.dataset import simulate_dataset


def timed_simulation(out: Path, workers: int, n_exposures: int) -> tuple[float, dict[str, str]]:
    """Wall time of the simulation and the digest of each file it wrote."""
    cfg = load_params("params.yaml").simulate
    cfg = cfg.model_copy(update={"out": str(out), "truth_out": None, "n_exposures": n_exposures})
    start = time.perf_counter()
    simulate_dataset(cfg, workers)
    seconds = time.perf_counter() - start
    return seconds, {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def main() -> None:
    """Time both ways and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exposures", type=int, default=8, help="exposures simulated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        alone, files_alone = timed_simulation(Path(tmp) / "one", 1, args.exposures)
        shared, files_shared = timed_simulation(Path(tmp) / "all", 0, args.exposures)
    workers = resolve_workers(0, args.exposures)
    print(
        f"simulate {args.exposures} exposures: {alone:.1f} s in one process, {shared:.1f} s on "
        f"{workers} local Dask workers ({shared / alone:.2f} of the time); "
        f"files identical: {files_alone == files_shared}"
    )


if __name__ == "__main__":
    main()
