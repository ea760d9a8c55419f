"""Latent-space clustering at the study's scale: 200,000 latent vectors on this machine's CPU.

Run: ``.venv/bin/python benchmarks/bench_cluster.py [--n 200000]``. Writes synthetic
64-number latent vectors (a mixture of blobs) to a memory-mapped file, then runs
what the ``cluster`` stage runs for one merged group with the parameters of
``params.yaml``: UMAP and the GMM/BIC/AIC and K-means scan on the seeded
subsample (``cluster.fit_max_patches``), then the transform and classification of
every vector in chunks. Prints the wall time of each step and the peak memory.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_blobs

from slewdark.config import load_params
from slewdark.latent.fitting import fit_groups
from slewdark.latent.neighbourhood import classify_rows


def synthetic_latents(path: Path, n: int, dim: int, seed: int) -> np.ndarray:
    """Blobs of latent vectors written block by block into a float32 memory map."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    centres = np.random.default_rng(seed).normal(scale=4.0, size=(12, dim))
    block = 50_000
    for start in range(0, n, block):
        stop = min(start + block, n)
        vectors, _ = make_blobs(stop - start, centers=centres, random_state=seed + start)
        out[start:stop] = vectors
    out.flush()
    return np.load(path, mmap_mode="r")


def main() -> None:
    """Time the fit and the classification and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="latent vectors")
    parser.add_argument("--dim", type=int, default=64, help="numbers per latent vector")
    args = parser.parse_args()
    params = load_params("params.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        latents = synthetic_latents(Path(tmp) / "latents.npy", args.n, args.dim, params.seed)
        rows = np.arange(args.n)
        start = time.perf_counter()
        fit = fit_groups(latents, {"all": rows}, params.umap, params.cluster, params.seed, workers=1)["all"]
        fitted = time.perf_counter()
        classify_rows(
            fit.model(0),
            latents,
            rows,
            params.cluster.neighbourhood_threshold,
            params.umap.transform_chunk,
            fit.fitted_rows,
        )
        done = time.perf_counter()
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"cluster: {args.n} latent vectors of {args.dim}: fit on {len(fit.fitted_rows)} "
        f"{fitted - start:.0f} s, transform + classify all {done - fitted:.0f} s, "
        f"total {done - start:.0f} s, peak memory {peak_gib:.2f} GiB"
    )


if __name__ == "__main__":
    main()
