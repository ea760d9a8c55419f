"""Full-exposure inference: every detector of a slew dark to a persistence mask product.

:func:`predict_files` is what ``slewdark predict`` runs. Each exposure is read one
detector at a time, normalised as the model was trained
(:mod:`slewdark.inference.unet_input`), cut into overlapping tiles
(:mod:`slewdark.core.tiling`) that go through the network in batches under
``torch.inference_mode`` (batch norms folded into the convolutions,
channels-last layout, bfloat16 autocast on CPUs that support it natively; see
``benchmarks/bench_predict.py`` for the figures), blended back, thresholded, and
written as ``<stem>.mask.fits`` (``DETxy.MASK``, ``DETxy.PROB``, optional
``DETxy.DQ``) with the provenance keywords of the data contract. Everything the
prediction depends on (architecture, normalisation, tile geometry, threshold)
comes from the checkpoint, so ``params.yaml`` is not needed: the run settings
have built-in defaults (:class:`PredictOptions`) and the default model is the
one in the repository slewdark runs from (:func:`default_model`).

A file that breaks the contract is reported in one line and skipped; a
detector without any usable pixel gets an all-zero mask marked ``NOMASK``. Two
inputs that would write the same product are refused before anything runs. The
product is written to a temporary name and renamed only when complete, so an
existing good output is never replaced by a partial one; SIGTERM removes the
temporary file on the way out, and a run removes those that killed runs left.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from astropy.io import fits
from torch import nn
from tqdm import tqdm

from slewdark import __version__
from slewdark.core.normalisation import BrightVeto, Normalisation
from slewdark.core.tiling import TileBlender, iter_tile_batches, tile_origins
from slewdark.errors import ContractError, SlewdarkError, Terminated
from slewdark.inference.manifest import FAILED, OK, SKIPPED, Manifest, ManifestRow
from slewdark.inference.timing import input_timing
from slewdark.inference.unet_input import detector_input
from slewdark.io.atomic import remove_stale_temporaries
from slewdark.io.fits import (
    PRODUCT_SUFFIX,
    DetectorImage,
    ExposureInfo,
    MaskLayers,
    file_sha256,
    iter_detectors,
    mask_product_path,
    read_info,
    write_mask_product,
)
from slewdark.io.previous import optional_previous_exposure
from slewdark.models.checkpoint import CHECKPOINT_KEYS, UnetModel, _checkpoint_network
from slewdark.models.precision import autocast_dtype
from slewdark.revision import UNKNOWN_REVISION, code_revision, package_repository

log = logging.getLogger(__name__)

REGISTRY_SCHEME = "models:/"
DEFAULT_MODEL = Path("models/unet.pt")
"""The model the pipeline trains, relative to the repository."""
NO_USABLE_PIXEL = "no usable pixel"
"""``NOMASK`` of a detector whose pixels are all NaN or flagged unusable in DQ."""
FILE_ERRORS = (SlewdarkError, OSError, ValueError)


@dataclass(frozen=True)
class PredictOptions:
    """How ``slewdark predict`` runs; none of these change the mask.

    The defaults are those of ``params.yaml`` ``predict``, used without it.

    Attributes
    ----------
    batch_size
        Tiles per forward pass on the CPU.
    write_prob
        Write ``DETxy.PROB`` beside the mask.
    with_dq
        Also write ``DETxy.DQ`` with the persistence bit set where the mask is 1.
    num_threads
        Torch CPU threads; 0 keeps torch's default.
    autocast
        Run the network in reduced precision: bfloat16 on a CPU that supports
        it natively, float16 on CUDA (probabilities change by about 1e-2, the
        mask of a few borderline pixels; see ``benchmarks/bench_predict.py``).
    gpu_batch_size
        Tiles per forward pass on a GPU, which has the memory for more: 4 is a
        whole 2040 px detector in 2 x 2 tiles of 1040 px.
    """

    batch_size: int = 2
    write_prob: bool = True
    with_dq: bool = False
    num_threads: int = 0
    autocast: bool = True
    gpu_batch_size: int = 4

    def tile_batch(self, device: torch.device) -> int:
        """Tiles per forward pass on ``device``: ``gpu_batch_size`` on CUDA, else ``batch_size``."""
        return self.gpu_batch_size if device.type == "cuda" else self.batch_size


@dataclass
class PredictReport:
    """Outcome of a batch: products written, those already current, ``(file, problem)`` of every failure."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def add(self, path: Path, out: Path, row: ManifestRow) -> None:
        """Count the outcome ``row`` of input ``path`` whose product is ``out``."""
        if row.status == OK:
            self.written.append(out)
        elif row.status == SKIPPED:
            self.skipped.append(out)
        else:
            self.failed.append((path, row.error))


def default_model() -> Path:
    """``models/unet.pt`` of the repository slewdark runs from, wherever the current folder is.

    Raises
    ------
    SlewdarkError
        When slewdark is installed outside its repository: then the model must be named.
    """
    repo = package_repository()
    if repo is None:
        raise SlewdarkError(
            "no default model: slewdark is not installed from its repository; "
            "pass --model PATH or --model models:/NAME@ALIAS"
        )
    return repo / DEFAULT_MODEL


def default_tracking_uri() -> str | None:
    """The MLflow store of the repository slewdark runs from (``mlflow.db``), None when there is none."""
    repo = package_repository()
    if repo is None or not (repo / "mlflow.db").is_file():
        return None
    return f"sqlite:///{repo / 'mlflow.db'}"


def load_unet(model: str | Path, device: torch.device, tracking_uri: str | None = None) -> UnetModel:
    """Load ``models/unet.pt`` from a path, or a registered model from ``models:/NAME@ALIAS``.

    A path never imports MLflow; a registry URI downloads the checkpoint that
    the registered version's run stored (:func:`slewdark.ops.tracking.download_registered_checkpoint`).

    Parameters
    ----------
    model
        Checkpoint path or ``models:/NAME@ALIAS`` / ``models:/NAME/VERSION``.
    device
        Where to put the network.
    tracking_uri
        Tracking store of a registry URI (``$MLFLOW_TRACKING_URI`` wins).

    Returns
    -------
    UnetModel

    Raises
    ------
    SlewdarkError
        When the file is missing, is not a UNet checkpoint, or its weights do not
        fit the network its ``arch`` builds.
    """
    source = str(model)
    path = Path(source)
    if source.startswith(REGISTRY_SCHEME):
        from slewdark.ops.tracking import download_registered_checkpoint

        path = download_registered_checkpoint(source, tracking_uri)
    if not path.exists():
        raise SlewdarkError(f"{path}: model not found (train it with `slewdark train-unet` or pass --model)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SlewdarkError(f"{path}: not a readable torch checkpoint ({error})") from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(saved, dict) or key not in saved]
    if missing:
        raise SlewdarkError(f"{path}: not a UNet checkpoint, missing {missing}")
    normalisation = Normalisation.from_dict(saved["normalisation"])
    if int(saved["arch"].get("in_channels", 1)) == 3 and (
        normalisation.law is None or normalisation.law_fit is None
    ):
        raise SlewdarkError(
            f"{path}: a three-channel UNet checkpoint without the law (and its fit) of its third channel"
        )
    network = _checkpoint_network(path, saved).to(device).eval().to(memory_format=torch.channels_last)
    return UnetModel(
        network=network,
        arch=dict(saved["arch"]),
        normalisation=normalisation,
        tile=int(saved["tile"]),
        overlap=int(saved["overlap"]),
        threshold=float(saved["threshold"]),
        veto=BrightVeto.from_dict(saved.get("veto")),
        source=source,
        mlflow_run_id=str(saved.get("mlflow_run_id") or ""),
        registered_version=saved.get("registered_version"),
        params_sha=str(saved.get("params_sha") or ""),
        checkpoint_sha=file_sha256(path),
    )


def predict_probability(
    network: nn.Module,
    image: np.ndarray,
    tile: int,
    overlap: int,
    batch_size: int,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Persistence probability of a full frame by tiled, blended inference.

    Parameters
    ----------
    network
        UNet in eval mode (logits out), channels-last.
    image
        float32 ``(C, H, W)`` network input.
    tile, overlap
        Tile side (a multiple of the network's output stride) and blending ramp.
    batch_size
        Tiles per forward pass.
    dtype
        Autocast dtype (:func:`autocast_dtype`); None runs in float32.

    Returns
    -------
    ndarray
        float32 ``(H, W)`` in [0, 1].
    """
    _, height, width = image.shape
    device = next(network.parameters()).device
    blender = TileBlender(height, width, tile, overlap)
    origins = tile_origins(height, width, tile, overlap)
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
    ):
        for chunk, batch in iter_tile_batches(image, origins, tile, batch_size):
            x = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
            probs = torch.sigmoid(network(x).float())[:, 0].cpu().numpy()
            blender.add(chunk, probs)
    return blender.result()


def plan_outputs(paths: Sequence[str | Path], out_dir: str | Path) -> dict[Path, Path]:
    """The product of every input, checked before anything is written.

    An input named twice (the same file) is predicted once.

    Parameters
    ----------
    paths
        Input files.
    out_dir
        Output folder.

    Returns
    -------
    dict
        Input path to product path, in input order.

    Raises
    ------
    SlewdarkError
        When ``out_dir`` exists and is not a folder, or when two different
        inputs would write the same product (same stem in different folders).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SlewdarkError(f"{out_dir}: --out is an existing file, not a folder")
    plan: dict[Path, Path] = {}
    writers: dict[Path, Path] = {}
    for path in map(Path, paths):
        out = mask_product_path(path, out_dir)
        first = writers.setdefault(out, path)
        if first.resolve() != path.resolve():
            raise SlewdarkError(
                f"{out}: both {first} and {path} would be written there; "
                "rename one or predict them into separate --out folders"
            )
        plan.setdefault(first, out)
    return plan


def provenance_header(unet: UnetModel, input_sha: str, git_rev: str, obs_id: str) -> fits.Header:
    """Primary header of a mask product: the contract's provenance keywords.

    ``GITREV`` (git revision of the running code, ``unknown`` with a comment
    when it is not a git checkout), ``MODEL`` (model path or registry URI),
    ``PARAMSHA`` (sha256 of the params that trained the model), ``MODELSHA``
    (sha256 of the checkpoint file) and ``INPUTSHA`` (sha256 of the input file)
    carry no comment: their values fill the card.
    """
    header = fits.Header()
    header["SDVER"] = (__version__, "slewdark version")
    header["GITREV"] = git_rev
    if git_rev == UNKNOWN_REVISION:
        header.comments["GITREV"] = "not run from a git checkout: see SDVER"
    header["MODEL"] = unet.source
    header["MLRUN"] = (unet.mlflow_run_id, "MLflow run id of the model")
    header["MODELVER"] = (str(unet.registered_version or ""), "registered model version")
    header["PARAMSHA"] = unet.params_sha
    header["MODELSHA"] = unet.checkpoint_sha
    header["INPUTSHA"] = input_sha
    header["DATE"] = (dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "UTC time of writing")
    header["OBS_ID"] = (obs_id, "exposure identifier of the input")
    header["THRESH"] = (unet.threshold, "probability threshold of MASK")
    if unet.veto is not None:
        header["VETOSIG"] = (unet.veto.sigma, "noise sigmas above which a pixel is vetoed")
        header["VETOGROW"] = (unet.veto.grow, "px: vetoed pixels grown by this")
        header["VETOFILL"] = (unet.veto.fill, "px: vetoed gaps closed by this; 0=none")
        if unet.veto.spare_saturated is not None:
            header["VETOSPAR"] = (unet.veto.spare_saturated, "px: PREVFILE saturation not vetoed")
        if unet.veto.spare_predicted is not None:
            header["VETOPRED"] = (unet.veto.spare_predicted, "law-channel units: prediction not vetoed")
    return header


def previous_input(path: Path, info: ExposureInfo, unet: UnetModel) -> Path | None:
    """The previous exposure the model reads for this dark, None when it reads none.

    A model of two or three channels that gets none sees the slew dark alone:
    its labels mark persistence of a few electrons, mostly below the noise, so
    it flags almost nothing then (README, "What the product needs"). That is
    logged, and the product's ``PREVUSED`` keyword says so.
    """
    if unet.in_channels < 2:
        return None
    prev_path = optional_previous_exposure(info)
    if prev_path is None:
        log.warning(
            "%s: no previous exposure (PREVFILE): the model sees the slew dark alone and flags "
            "almost no persistence; an empty mask here is not evidence of none",
            path,
        )
    return prev_path


def _exposure_layers(
    path: Path,
    prev_path: Path | None,
    timing: tuple[float | None, float | None],
    unet: UnetModel,
    options: PredictOptions,
    progress: tqdm,
) -> Iterator[MaskLayers]:
    """Mask layers of every detector of an exposure, one detector in memory at a time."""
    for detector in iter_detectors(path):
        if detector.usable.any():
            layers = _detector_layers(path, detector, unet, options, prev_path, timing)
        else:
            log.warning("%s: DET%s: %s, its MASK is all zero", path, detector.detector, NO_USABLE_PIXEL)
            layers = _empty_layers(detector, options)
        del detector  # not kept while its layers are written and the next detector is read
        progress.update(1)
        yield layers


def _detector_layers(
    path: Path,
    detector: DetectorImage,
    unet: UnetModel,
    options: PredictOptions,
    prev_path: Path | None,
    timing: tuple[float | None, float | None],
) -> MaskLayers:
    """The mask layers of one detector with usable pixels; ``timing`` is the dark's TSINCE and EXPTIME."""
    image = detector_input(path, detector, unet.normalisation, unet.in_channels, prev_path, timing)
    dtype = autocast_dtype(unet.device, options.autocast)
    batch_size = options.tile_batch(unet.device)
    prob = predict_probability(unet.inference_network(), image, unet.tile, unet.overlap, batch_size, dtype)
    prob[~detector.usable] = 0.0
    return MaskLayers(
        detector=detector.detector,
        mask=unet.mask(prob, image, detector.usable).astype(np.uint8),
        prob=prob if options.write_prob else None,
        dq=detector.dq,
        persist_bit=detector.persist_bit,
    )


def _empty_layers(detector: DetectorImage, options: PredictOptions) -> MaskLayers:
    """The layers of a detector without any usable pixel: nothing flagged, and why (``NOMASK``)."""
    zeros = np.zeros(detector.usable.shape, np.float32)
    return MaskLayers(
        detector=detector.detector,
        mask=zeros.astype(np.uint8),
        prob=zeros if options.write_prob else None,
        dq=detector.dq,
        persist_bit=detector.persist_bit,
        no_mask=NO_USABLE_PIXEL,
    )


def predict_exposure(
    path: str | Path,
    out: str | Path,
    unet: UnetModel,
    options: PredictOptions,
    git_rev: str,
    input_sha: str | None = None,
) -> Path:
    """Predict one exposure and write its product ``out`` atomically.

    Parameters
    ----------
    path
        Input slew-dark FITS file.
    out
        The product, ``<out_dir>/<stem>.mask.fits`` (:func:`plan_outputs`); its folder is created if needed.
    unet
        The model.
    options
        Batch size and optional layers.
    git_rev
        ``GITREV`` keyword value.
    input_sha
        ``INPUTSHA`` when the caller has it already; computed when None.

    Returns
    -------
    Path
        The product written.

    Raises
    ------
    ContractError
        When the input breaks the data contract.
    """
    path = Path(path)
    if not path.is_file():
        raise ContractError(path, "no such file")
    info = read_info(path)
    out = Path(out)
    prev_path = previous_input(path, info, unet)
    timing, nominal = input_timing(path, info, unet.in_channels, prev_path)
    header = provenance_header(unet, input_sha or file_sha256(path), git_rev, info.obs_id)
    header["PREVUSED"] = (
        "none" if prev_path is None else prev_path.name,
        "previous exposure read; none: the dark alone",
    )
    if nominal:
        header["LAWTIME"] = ("nominal", "law channel: a nominal TSINCE/EXPTIME")
    with tqdm(total=len(info.detectors), desc=path.name, unit="det", leave=False) as progress:
        layers = _exposure_layers(path, prev_path, timing, unet, options, progress)
        write_mask_product(out, header, layers, options.with_dq)
    return out


def product_is_current(out: Path, input_sha: str, unet: UnetModel, options: PredictOptions) -> bool:
    """Whether ``out`` is already the product of this input by this model, with the layers asked for.

    Current means: the product's ``INPUTSHA`` is ``input_sha``, its ``MODELSHA``
    is the model's checkpoint sha (never for a model without one), and it has
    ``DETxy.PROB`` and ``DETxy.DQ`` when ``options`` asks for them. An
    unreadable product is not current: it is predicted again.
    """
    if not unet.checkpoint_sha or not out.is_file():
        return False
    try:
        with fits.open(out) as hdul:
            header = hdul[0].header
            layers = {hdu.name.rsplit(".", 1)[-1] for hdu in hdul[1:]}
    except (OSError, ValueError):
        return False
    wanted = {"MASK", *(["PROB"] if options.write_prob else []), *(["DQ"] if options.with_dq else [])}
    return (
        header.get("INPUTSHA") == input_sha
        and header.get("MODELSHA") == unet.checkpoint_sha
        and wanted <= layers
    )


def manifest_row(unet: UnetModel, path: Path, **outcome: Any) -> ManifestRow:
    """The manifest row of input ``path`` predicted by ``unet``; ``outcome`` gives the other columns."""
    return ManifestRow(
        input=str(path.absolute()),
        model=unet.source,
        modelsha=unet.checkpoint_sha,
        modelver=str(unet.registered_version or ""),
        mlrun=unet.mlflow_run_id,
        **outcome,
    )


def predict_or_skip(
    path: Path, out: Path, unet: UnetModel, options: PredictOptions, git_rev: str
) -> ManifestRow:
    """One exposure of a batch: predicted, skipped when its product is current, or failed in one line.

    A file that breaks the contract or cannot be read is logged and reported in
    the row (status ``failed``); it never raises for the file's sake.

    Parameters
    ----------
    path, out
        Input and its product (:func:`plan_outputs`).
    unet, options, git_rev
        As :func:`predict_exposure`.

    Returns
    -------
    ManifestRow
        Status ``ok``, ``skipped`` or ``failed``, with the input's sha, time and detectors.
    """
    start = time.perf_counter()
    input_sha, detectors = "", 0
    try:
        if not path.is_file():
            raise ContractError(path, "no such file")
        input_sha = file_sha256(path)
        detectors = len(read_info(path).detectors)
        status = SKIPPED if product_is_current(out, input_sha, unet, options) else OK
        if status == OK:
            predict_exposure(path, out, unet, options, git_rev, input_sha)
        error = ""
    except FILE_ERRORS as problem:
        status, error = FAILED, str(problem) if isinstance(problem, ContractError) else f"{path}: {problem}"
        log.error("skipped %s", error)
    seconds = time.perf_counter() - start
    return manifest_row(
        unet, path, inputsha=input_sha, status=status, error=error, seconds=seconds, detectors=detectors
    )


def prepare_batch(paths: Sequence[str | Path], out_dir: str | Path) -> dict[Path, Path]:
    """Plan the products (:func:`plan_outputs`) and remove the temporary files that killed runs left.

    Raises
    ------
    SlewdarkError
        When the products cannot be planned.
    """
    plan = plan_outputs(paths, out_dir)
    for stale in remove_stale_temporaries(out_dir, PRODUCT_SUFFIX):
        log.warning("removed %s, the temporary file of a killed run", stale)
    return plan


def prepare_torch(num_threads: int) -> None:
    """Torch settings of a predicting process: ``num_threads`` CPU threads (0 keeps torch's), no denormals."""
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    torch.set_flush_denormal(True)


def predict_files(
    paths: Sequence[str | Path], out_dir: str | Path, unet: UnetModel, options: PredictOptions
) -> PredictReport:
    """Predict a batch of exposures in this process; a bad file is logged in one line and skipped.

    Before anything runs the products are planned (:func:`prepare_batch`: two
    inputs for one product, or an ``out_dir`` that is a file, stop the batch)
    and the temporary files that killed runs left in ``out_dir`` are removed.
    An input whose product is current (:func:`product_is_current`) is skipped.
    Each outcome is recorded in ``out_dir/manifest.csv`` as it comes
    (:class:`~slewdark.inference.manifest.Manifest`). While it runs, SIGTERM raises
    :class:`~slewdark.errors.Terminated`, so the product being written is
    removed before the process exits. :func:`slewdark.inference.batch.predict_on_cluster`
    does the same on a Dask cluster.

    Parameters
    ----------
    paths
        Input FITS files.
    out_dir
        Output folder.
    unet
        The model.
    options
        Batch size and optional layers.

    Returns
    -------
    PredictReport
        Written, skipped and failed products, in input order.

    Raises
    ------
    SlewdarkError
        When the products cannot be planned (:func:`plan_outputs`) or the manifest is not one.
    Terminated
        On SIGTERM.
    """
    plan = prepare_batch(paths, out_dir)
    manifest = Manifest.load(out_dir)
    git_rev = code_revision()
    prepare_torch(options.num_threads)
    report = PredictReport()
    with sigterm_raises():
        for path, out in tqdm(plan.items(), desc="predict", unit="exposure"):
            row = predict_or_skip(path, out, unet, options, git_rev)
            manifest.record(row)
            report.add(path, out, row)
    return report


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`~slewdark.errors.Terminated` inside the block.

    The exception unwinds through :func:`slewdark.io.atomic.atomic_path`, which
    removes the temporary file. Signal handlers belong to the main thread: in
    any other thread the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
