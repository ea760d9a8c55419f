"""Full-exposure inference: every detector of a slew dark to a persistence mask product.

:func:`predict_files` is what ``slewdark predict`` runs. Each exposure is read one
detector at a time, normalised as the model was trained
(:mod:`slewdark.unet_input`), cut into overlapping tiles
(:mod:`slewdark.tiling`) that go through the network in batches under
``torch.inference_mode`` (batch norms folded into the convolutions,
channels-last layout, bfloat16 autocast on CPUs that support it natively; see
``benchmarks/bench_predict.py`` for the figures), blended back, thresholded, and
written as ``<stem>.mask.fits`` (``DETxy.MASK``, ``DETxy.PROB``, optional
``DETxy.DQ``) with the provenance keywords of the data contract. Everything the
prediction depends on (architecture, normalisation, tile geometry, threshold)
comes from the checkpoint, so ``params.yaml`` is not needed.

A file that breaks the contract is reported in one line and skipped; the
product is written to a temporary name and renamed only when complete, so an
existing good output is never replaced by a partial one.
"""

from __future__ import annotations

import datetime as dt
import logging
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
from slewdark.errors import ContractError, SlewdarkError
from slewdark.io.fits import MaskLayers, file_sha256, iter_detectors, read_info, write_mask_product
from slewdark.models.unet import build_unet, fuse_for_inference
from slewdark.tiling import TileBlender, iter_tile_batches, tile_origins
from slewdark.tracking import git_revision
from slewdark.unet_input import BrightVeto, Normalisation, detector_input, optional_previous_exposure

log = logging.getLogger(__name__)

REGISTRY_SCHEME = "models:/"
CHECKPOINT_KEYS = ("state_dict", "arch", "normalisation", "tile", "overlap", "threshold")
FILE_ERRORS = (SlewdarkError, OSError, ValueError)


@dataclass
class UnetModel:
    """A trained UNet with everything needed to apply it (the content of ``models/unet.pt``).

    Attributes
    ----------
    network
        The torch module, in eval mode, on its device.
    arch
        Keyword arguments of :func:`slewdark.models.unet.build_unet`.
    normalisation
        Input stretch.
    tile, overlap
        Tile side and blending ramp in pixels.
    threshold
        Probability at and above which a pixel is persistence.
    source
        The model path or registry URI (``MODEL`` keyword).
    mlflow_run_id, registered_version, params_sha
        Lineage (``MLRUN``, ``MODELVER``, ``PARAMSHA``).
    veto
        Pixels too bright to be persistence, never flagged (None: no veto).
    """

    network: nn.Module
    arch: dict[str, Any]
    normalisation: Normalisation
    tile: int
    overlap: int
    threshold: float
    source: str
    mlflow_run_id: str = ""
    registered_version: str | None = None
    params_sha: str = ""
    veto: BrightVeto | None = None
    _inference: nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def in_channels(self) -> int:
        """1 (slew dark) or 2 (and the previous exposure)."""
        return int(self.arch.get("in_channels", 1))

    @property
    def device(self) -> torch.device:
        """Where the network lives."""
        return next(self.network.parameters()).device

    def mask(self, prob: np.ndarray, image: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """The boolean persistence mask of one detector.

        Parameters
        ----------
        prob
            The network's probability map.
        image
            The network input (:func:`~slewdark.unet_input.detector_input`); channel 0 feeds the veto.
        usable
            Pixels with data: the others are never flagged.
        """
        mask = (prob >= self.threshold) & usable
        if self.veto is not None:
            mask &= ~self.veto.vetoed(image[0], self.normalisation.scaling)
        return mask

    def inference_network(self) -> nn.Module:
        """The network prepared for inference (batch norms folded, channels-last), built on first use.

        Built from ``network`` once: change the weights afterwards and the
        prepared copy is stale, so build a new :class:`UnetModel` instead.
        """
        if self._inference is None:
            self._inference = fuse_for_inference(self.network)
        return self._inference


@dataclass(frozen=True)
class PredictOptions:
    """How ``slewdark predict`` runs; none of these change the mask.

    Attributes
    ----------
    batch_size
        Tiles per forward pass.
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
    """

    batch_size: int
    write_prob: bool
    with_dq: bool
    num_threads: int
    autocast: bool


@dataclass
class PredictReport:
    """Outcome of a batch: products written and ``(file, problem)`` of every failure."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def checkpoint_payload(unet: UnetModel) -> dict[str, Any]:
    """The ``models/unet.pt`` dictionary of a model (``docs/products.md``)."""
    return {
        "state_dict": {k: v.detach().cpu() for k, v in unet.network.state_dict().items()},
        "arch": dict(unet.arch),
        "normalisation": unet.normalisation.to_dict(),
        "tile": unet.tile,
        "overlap": unet.overlap,
        "threshold": unet.threshold,
        "veto": None if unet.veto is None else unet.veto.to_dict(),
        "mlflow_run_id": unet.mlflow_run_id,
        "registered_version": unet.registered_version,
        "params_sha": unet.params_sha,
    }


def load_unet(model: str | Path, device: torch.device, tracking_uri: str | None = None) -> UnetModel:
    """Load ``models/unet.pt`` from a path, or a registered model from ``models:/NAME@ALIAS``.

    A path never imports MLflow; a registry URI downloads the checkpoint that
    the registered version's run stored (:func:`slewdark.tracking.download_registered_checkpoint`).

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
        When the file is missing or is not a UNet checkpoint.
    """
    source = str(model)
    path = Path(source)
    if source.startswith(REGISTRY_SCHEME):
        from slewdark.tracking import download_registered_checkpoint

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
    network = build_unet(**saved["arch"])
    network.load_state_dict(saved["state_dict"])
    network = network.to(device).eval().to(memory_format=torch.channels_last)
    return UnetModel(
        network=network,
        arch=dict(saved["arch"]),
        normalisation=Normalisation.from_dict(saved["normalisation"]),
        tile=int(saved["tile"]),
        overlap=int(saved["overlap"]),
        threshold=float(saved["threshold"]),
        veto=BrightVeto.from_dict(saved.get("veto")),
        source=source,
        mlflow_run_id=str(saved.get("mlflow_run_id") or ""),
        registered_version=saved.get("registered_version"),
        params_sha=str(saved.get("params_sha") or ""),
    )


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """Reduced precision for inference on ``device``, or None for float32.

    bfloat16 on a CPU with native support (oneDNN reports it: AVX512-BF16 or
    AMX), float16 on CUDA; None when disabled or when the CPU would emulate
    bfloat16 (slower than float32).
    """
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


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


def output_path(path: Path, out_dir: Path) -> Path:
    """``DIR/<stem>.mask.fits`` of an input ``<stem>.fits``."""
    name = path.name
    for suffix in (".fits.gz", ".fits", ".fit", ".fts"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out_dir / f"{name}.mask.fits"


def provenance_header(unet: UnetModel, input_sha: str, git_rev: str, obs_id: str) -> fits.Header:
    """Primary header of a mask product: the contract's provenance keywords.

    ``GITREV`` (git revision), ``MODEL`` (model path or registry URI),
    ``PARAMSHA`` (sha256 of the params that trained the model) and ``INPUTSHA``
    (sha256 of the input file) carry no comment: their values fill the card.
    """
    header = fits.Header()
    header["SDVER"] = (__version__, "slewdark version")
    header["GITREV"] = git_rev
    header["MODEL"] = unet.source
    header["MLRUN"] = (unet.mlflow_run_id, "MLflow run id of the model")
    header["MODELVER"] = (str(unet.registered_version or ""), "registered model version")
    header["PARAMSHA"] = unet.params_sha
    header["INPUTSHA"] = input_sha
    header["DATE"] = (dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "UTC time of writing")
    header["OBS_ID"] = (obs_id, "exposure identifier of the input")
    header["THRESH"] = (unet.threshold, "probability threshold of MASK")
    if unet.veto is not None:
        header["VETOSIG"] = (unet.veto.sigma, "noise sigmas above which a pixel is never MASK")
        header["VETOGROW"] = (unet.veto.grow, "px: vetoed pixels grown by this")
    return header


def _exposure_layers(
    path: Path, unet: UnetModel, options: PredictOptions, progress: tqdm
) -> Iterator[MaskLayers]:
    """Mask layers of every detector of an exposure, one detector in memory at a time."""
    info = read_info(path)
    prev_path = optional_previous_exposure(info) if unet.in_channels == 2 else None
    dtype = autocast_dtype(unet.device, options.autocast)
    for detector in iter_detectors(path):
        image = detector_input(path, detector, unet.normalisation, unet.in_channels, prev_path)
        prob = predict_probability(
            unet.inference_network(), image, unet.tile, unet.overlap, options.batch_size, dtype
        )
        prob[~detector.usable] = 0.0
        mask = unet.mask(prob, image, detector.usable).astype(np.uint8)
        progress.update(1)
        yield MaskLayers(
            detector=detector.detector,
            mask=mask,
            prob=prob if options.write_prob else None,
            dq=detector.dq,
            persist_bit=detector.persist_bit,
        )


def predict_exposure(
    path: str | Path, out_dir: str | Path, unet: UnetModel, options: PredictOptions, git_rev: str
) -> Path:
    """Predict one exposure and write ``out_dir/<stem>.mask.fits`` atomically.

    Parameters
    ----------
    path
        Input slew-dark FITS file.
    out_dir
        Output folder (created if needed).
    unet
        The model.
    options
        Batch size and optional layers.
    git_rev
        ``GITREV`` keyword value.

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
    out = output_path(path, Path(out_dir))
    header = provenance_header(unet, file_sha256(path), git_rev, info.obs_id)
    with tqdm(total=len(info.detectors), desc=path.name, unit="det", leave=False) as progress:
        write_mask_product(out, header, _exposure_layers(path, unet, options, progress), options.with_dq)
    return out


def predict_files(
    paths: Sequence[str | Path], out_dir: str | Path, unet: UnetModel, options: PredictOptions
) -> PredictReport:
    """Predict a batch of exposures; a bad file is logged in one line and skipped.

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
        Written products and failures, in input order.
    """
    git_rev = git_revision()
    if options.num_threads > 0:
        torch.set_num_threads(options.num_threads)
    torch.set_flush_denormal(True)
    report = PredictReport()
    for path in tqdm(paths, desc="predict", unit="exposure"):
        try:
            report.written.append(predict_exposure(path, out_dir, unet, options, git_rev))
        except FILE_ERRORS as error:
            problem = str(error) if isinstance(error, ContractError) else f"{path}: {error}"
            log.error("skipped %s", problem)
            report.failed.append((Path(path), problem))
    return report
