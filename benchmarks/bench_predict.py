"""Throughput of ``slewdark predict`` on a full-frame detector, against astroscrappy on the same pixels.

Run: ``.venv/bin/python benchmarks/bench_predict.py [--input EXPOSURE] [--model models/unet.pt]``.
Times the real path (:func:`slewdark.inference.predict.predict_files`: read, normalise,
tiled inference, blending, threshold, FITS write with provenance) on one
2040x2040 detector, into a fresh output folder each time, in float32 and with
``predict.autocast`` (bfloat16 on a CPU with native support, float16 on CUDA).
Reports Mpix/s, the extrapolation to a 16-detector exposure (66.6 Mpix), the
network's share, how many mask pixels reduced precision changes, and
``astroscrappy.detect_cosmics`` on the same detector with the evaluation's
settings. Without ``--input`` the detector is the first of the first held-out
exposure taken after a grism exposure (traces to find) when present, else
synthetic noise with streaks; without a trained model the architecture of
``params.yaml`` is randomly initialised (same cost).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits

from slewdark.config import load_params
from slewdark.core.normalisation import Normalisation
from slewdark.core.scaling import Scaling
from slewdark.evaluation.truth import read_truth, truth_file
from slewdark.inference.predict import PredictOptions, load_unet, predict_files, predict_probability
from slewdark.inference.unet_input import detector_input
from slewdark.io.exposures import exposure_files
from slewdark.io.fits import read_detector, read_info
from slewdark.models.checkpoint import UnetModel
from slewdark.models.unet import build_unet
from slewdark.stages.train_unet import arch_kwargs, previous_kind

EXPOSURE_MPIX = 16 * 2040 * 2040 / 1e6


def one_detector_file(source: Path | None, folder: Path) -> Path:
    """A one-detector exposure: the first detector of ``source``, or synthetic noise with streaks."""
    if source is not None:
        data = read_detector(source, read_info(source).detectors[0]).data
    else:
        rng = np.random.default_rng(0)
        data = (9.0 * rng.standard_normal((2040, 2040))).astype(np.float32)
        cols = np.arange(2040)
        for row in range(100, 2000, 150):
            data[row + (cols * 0.07).astype(int) % 40, cols] += 60.0
    path = folder / "bench.fits"
    primary = fits.PrimaryHDU()
    primary.header["EXPTIME"] = 100.0
    fits.HDUList([primary, fits.ImageHDU(data, name="DET11.SCI")]).writeto(path)
    return path


def model_for(path: Path, params_path: Path, device: torch.device) -> UnetModel:
    """The trained checkpoint when it exists, else the params architecture, randomly initialised."""
    if path.exists():
        return load_unet(path, device)
    params = load_params(params_path)
    torch.manual_seed(0)
    arch = arch_kwargs(params.unet)
    return UnetModel(
        network=build_unet(**arch).to(device).eval(),
        arch=arch,
        normalisation=Normalisation(Scaling(**params.scaling.model_dump()), params.unet.prev_full_scale),
        tile=params.unet.inference.tile,
        overlap=params.unet.inference.overlap,
        threshold=params.unet.threshold,
        source="random-init",
    )


def time_predict(exposure: Path, unet: UnetModel, options: PredictOptions, repeat: int) -> tuple[float, Path]:
    """Best wall time (s) of ``predict_files`` on the exposure, each run into a fresh folder."""
    best = float("inf")
    product = Path()
    for i in range(repeat + 1):
        out = exposure.parent / f"out-{options.autocast}-{i}"
        start = time.perf_counter()
        report = predict_files([exposure], out, unet, options)
        elapsed = time.perf_counter() - start
        if report.failed:
            raise SystemExit(f"predict failed: {report.failed}")
        product = report.written[0]
        if i > 0:  # the first run builds the fused network and warms the allocator
            best = min(best, elapsed)
    return best, product


def time_network(
    exposure: Path, unet: UnetModel, options: PredictOptions, dtype: torch.dtype | None
) -> float:
    """Wall time (s) of the tiled inference alone on the exposure's detector."""
    image = detector_input(exposure, read_detector(exposure, "11"), unet.normalisation, unet.in_channels)
    network = unet.inference_network()
    start = time.perf_counter()
    predict_probability(network, image, unet.tile, unet.overlap, options.batch_size, dtype)
    return time.perf_counter() - start


def time_astroscrappy(exposure: Path, params_path: Path) -> float:
    """Wall time (s) of ``astroscrappy.detect_cosmics`` on the detector, evaluation settings."""
    import astroscrappy

    params = load_params(params_path)
    cfg = params.evaluate.astroscrappy
    detector = read_detector(exposure, "11")
    data = np.where(detector.usable, detector.data, 0.0).astype(np.float32)
    start = time.perf_counter()
    astroscrappy.detect_cosmics(
        data,
        inmask=~detector.usable,
        sigclip=cfg.sigclip,
        sigfrac=cfg.sigfrac,
        objlim=cfg.objlim,
        niter=cfg.niter,
        gain=1.0,
        readnoise=cfg.readnoise,
        satlevel=params.simulate.detector.full_well,
    )
    return time.perf_counter() - start


def masks(product: Path) -> tuple[np.ndarray, np.ndarray]:
    """MASK and PROB of the product's detector."""
    with fits.open(product) as hdul:
        return hdul["DET11.MASK"].data.astype(bool), hdul["DET11.PROB"].data.astype(np.float32)


def truth_f1(mask: np.ndarray, source: Path | None, truth_dir: str | None, threshold: float) -> float | None:
    """Pixel F1 of a mask of the source's first detector against the simulator's truth, if any.

    The truth file is looked for in ``truth_dir`` (None: beside the source).
    """
    if source is None or not truth_file(source, truth_dir).exists():
        return None
    truth = read_truth(truth_file(source, truth_dir), read_info(source).detectors[0]).pers > threshold
    tp = int((mask & truth).sum())
    return 2 * tp / max(int(mask.sum()) + int(truth.sum()), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="exposure whose first detector is used")
    parser.add_argument("--model", type=Path, default=Path("models/unet.pt"), help="checkpoint")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--truth-dir", help="folder of the input's .truth.fits (default: data.heldout_truth)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per setting (best is kept)")
    args = parser.parse_args()
    params = load_params(args.params)
    source = args.input
    if source is None and Path(params.data.heldout).is_dir():
        heldout = exposure_files(params.data.heldout)
        source = next((path for path in heldout if previous_kind(path) == "grism"), heldout[0])
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, input: {source or 'synthetic'}")
    with tempfile.TemporaryDirectory() as tmp:
        exposure = one_detector_file(source, Path(tmp))
        mpix = 2040 * 2040 / 1e6
        for device in devices:
            unet = model_for(args.model, args.params, device)
            print(f"{device.type}: model {unet.source}, tile {unet.tile}, overlap {unet.overlap}")
            products = {}
            for autocast in (False, True):
                options = PredictOptions(params.predict.batch_size, True, False, 0, autocast)
                seconds, products[autocast] = time_predict(exposure, unet, options, args.repeat)
                dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
                network = time_network(exposure, unet, options, dtype if autocast else None)
                label = "reduced precision" if autocast else "float32"
                print(f"{device.type:4s} {label:17s}: {mpix / seconds:5.2f} Mpix/s end to end "
                      f"({seconds:.2f} s/detector, network {network:.2f} s) -> "
                      f"{EXPOSURE_MPIX / (mpix / seconds):5.1f} s per 16-detector exposure")  # fmt: skip
            (mask32, prob32), (mask16, prob16) = masks(products[False]), masks(products[True])
            union = max(int((mask32 | mask16).sum()), 1)
            print(f"{device.type:4s} reduced vs float32: {int((mask32 != mask16).sum())} mask pixels differ "
                  f"({100 * (mask32 != mask16).sum() / union:.3f} % of the flagged), "
                  f"max |dPROB| {np.abs(prob32 - prob16).max():.3g}")  # fmt: skip
            truth_dir = args.truth_dir or params.data.heldout_truth
            f1 = [truth_f1(m, source, truth_dir, params.evaluate.truth_threshold) for m in (mask32, mask16)]
            if f1[0] is not None:
                print(f"{device.type:4s} pixel F1 against truth: float32 {f1[0]:.4f}, reduced {f1[1]:.4f}")
        seconds = time_astroscrappy(exposure, args.params)
        print(f"cpu  astroscrappy.detect_cosmics: {mpix / seconds:5.2f} Mpix/s ({seconds:.2f} s/detector) -> "
              f"{EXPOSURE_MPIX / (mpix / seconds):5.1f} s per 16-detector exposure")  # fmt: skip


if __name__ == "__main__":
    main()
