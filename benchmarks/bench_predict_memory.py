"""Peak memory of ``slewdark predict`` on a full 16-detector exposure, on the CPU.

Run: ``.venv/bin/python benchmarks/bench_predict_memory.py [--detectors 16]`` (or
``benchmarks/run.py predict_memory``). Writes, in a temporary folder, a slew dark
of 16 detectors (2040x2040 float32 ``DETxy.SCI`` and uint32 ``DETxy.DQ`` each)
and the previous exposure its ``PREVFILE`` names, saves the model of
``benchmarks/bench_predict.py`` (``models/unet.pt`` when trained, else the
``params.yaml`` architecture randomly initialised: same memory) as a checkpoint,
and runs ``slewdark predict`` on the exposure in a subprocess started in that
folder (no ``params.yaml`` there: the built-in defaults) with ``--device cpu``.
Prints the subprocess's peak resident set size (``getrusage`` ``ru_maxrss``)
against the 1 GiB target (exit 1 above it), beside the peak of a process that
only imports ``slewdark.inference.predict`` (torch, torchvision, segmentation-models-pytorch):
the difference is what the data and the network cost. Run it with
``--detectors 1`` too: one detector in memory at a time means the 16-detector
peak is about the one-detector peak.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits

from bench_predict import model_for
from slewdark.io.fits import write_fits_atomic
from slewdark.models.checkpoint import checkpoint_payload

DETECTORS = tuple(f"{x}{y}" for x in range(1, 5) for y in range(1, 5))
SIDE = 2040
TARGET_GIB = 1.0


def detector_hdus(
    detectors: tuple[str, ...], level: float, seed: int, with_dq: bool
) -> Iterator[fits.ImageHDU]:
    """One detector's extensions at a time: noise around ``level`` with tilted streaks, and a DQ layer."""
    rng = np.random.default_rng(seed)
    cols = np.arange(SIDE)
    for det in detectors:
        sci = (level + 9.0 * rng.standard_normal((SIDE, SIDE))).astype(np.float32)
        for row in range(100, 2000, 150):
            sci[row + (cols * 0.07).astype(int) % 40, cols] += 60.0
        yield fits.ImageHDU(sci, name=f"DET{det}.SCI")
        if with_dq:
            dq = np.zeros((SIDE, SIDE), np.uint32)
            dq[:, 5] = 1 << 2  # a disconnected column
            yield fits.ImageHDU(dq, name=f"DET{det}.DQ")


def write_exposures(folder: Path, detectors: tuple[str, ...]) -> Path:
    """The slew dark and its previous exposure; returns the slew dark."""
    previous = folder / "bench.prev.fits"
    header = fits.Header({"EXPTIME": 100.0})
    write_fits_atomic(previous, header, detector_hdus(detectors, 1000.0, 1, with_dq=False))
    exposure = folder / "bench.fits"
    header.update({"OBS_ID": "bench", "PREVFILE": previous.name, "TSINCE": 60.0})
    write_fits_atomic(exposure, header, detector_hdus(detectors, 0.0, 2, with_dq=True))
    return exposure


def peak_rss_gib(argv: list[str], folder: Path) -> tuple[float, float]:
    """Peak resident memory (GiB) and wall time (s) of a command.

    ``ru_maxrss`` of the children is the largest of all so far: run the
    commands in increasing order of memory.
    """
    start = time.perf_counter()
    subprocess.run(argv, cwd=folder, check=True)
    seconds = time.perf_counter() - start
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detectors", type=int, default=16, choices=range(1, 17), metavar="1..16")
    parser.add_argument("--model", type=Path, default=Path("models/unet.pt"), help="checkpoint")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="architecture without one")
    args = parser.parse_args()
    detectors = DETECTORS[: args.detectors]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        exposure = write_exposures(folder, detectors)
        unet = model_for(args.model, args.params, torch.device("cpu"))
        checkpoint = folder / "unet.pt"
        torch.save(checkpoint_payload(unet), checkpoint)
        imports, _ = peak_rss_gib(
            [sys.executable, "-c", "import slewdark.cli, slewdark.inference.predict"], folder
        )
        argv = [sys.executable, "-m", "slewdark.cli", "-q", "predict", exposure.name, "--out", "masks"]
        gib, seconds = peak_rss_gib([*argv, "--model", str(checkpoint), "--device", "cpu"], folder)
        with fits.open(folder / "masks" / "bench.mask.fits") as hdul:
            masks = sum(hdu.name.endswith(".MASK") for hdu in hdul)
    verdict = "within" if gib <= TARGET_GIB else "ABOVE"
    print(f"predict, {len(detectors)} detectors ({masks} masks written) with {unet.source} on CPU "
          f"in {seconds:.0f} s: peak RSS {gib:.2f} GiB ({gib * 1024:.0f} MiB), {verdict} the "
          f"{TARGET_GIB:.0f} GiB target; the imports alone {imports * 1024:.0f} MiB")  # fmt: skip
    return 0 if gib <= TARGET_GIB else 1


if __name__ == "__main__":
    sys.exit(main())
