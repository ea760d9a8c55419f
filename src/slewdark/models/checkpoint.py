"""The UNet checkpoint format (``models/unet.pt``, ``docs/products.md``): the model and its file content."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slewdark.core.normalisation import BrightVeto, Normalisation
from slewdark.errors import SlewdarkError
from slewdark.models.unet import build_unet, fuse_for_inference

CHECKPOINT_KEYS = ("state_dict", "arch", "normalisation", "tile", "overlap", "threshold")


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
        Pixels too bright to be persistence, flagged only in the mask's gaps (None: no veto).
    checkpoint_sha
        sha256 of the checkpoint file it was loaded from (``MODELSHA``); empty
        for a model built in memory, whose products are never taken as current.
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
    checkpoint_sha: str = ""
    _inference: nn.Module | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def in_channels(self) -> int:
        """1 (slew dark), 2 (and the previous exposure) or 3 (and the law's persistence for the dark)."""
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
            The network input (:func:`~slewdark.inference.unet_input.detector_input`);
            channel 0 feeds the veto, channels 1 (the previous exposure) and 2 (the
            law's prediction) what it spares.
        usable
            Pixels with data: the others are never flagged.
        """
        mask = (prob >= self.threshold) & usable
        if self.veto is None:
            return mask
        previous = image[1] if image.shape[0] > 1 else None
        predicted = image[2] if image.shape[0] > 2 else None
        return self.veto.apply(mask, image[0], self.normalisation.scaling, previous, predicted) & usable

    def inference_network(self) -> nn.Module:
        """The network prepared for inference (batch norms folded, channels-last), built on first use.

        Built from ``network`` once: change the weights afterwards and the
        prepared copy is stale, so build a new :class:`UnetModel` instead.
        """
        if self._inference is None:
            self._inference = fuse_for_inference(self.network)
        return self._inference


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


def _checkpoint_network(path: Path, saved: Mapping[str, Any]) -> nn.Module:
    """The network of a checkpoint's ``arch`` with its weights, or one line saying why not."""
    try:
        network = build_unet(**saved["arch"])
    except Exception as error:  # the arch is data from a file: any failure to build is its fault
        raise SlewdarkError(f"{path}: its arch does not build a UNet ({_first_line(error)})") from None
    problem = weights_mismatch(network.state_dict(), saved["state_dict"])
    if problem:
        raise SlewdarkError(f"{path}: weights do not fit the network of its arch: {problem}")
    network.load_state_dict(saved["state_dict"])
    return network


def weights_mismatch(expected: Mapping[str, torch.Tensor], given: Any) -> str | None:
    """What keeps ``given`` from loading into a network whose state dict is ``expected``, None if nothing.

    Returns
    -------
    str or None
        Missing, unexpected and reshaped tensors, counted, with the first of each.
    """
    if not isinstance(given, Mapping):
        return f"state_dict is a {type(given).__name__}, not a mapping of tensors"
    missing = sorted(expected.keys() - given.keys())
    unexpected = sorted(given.keys() - expected.keys())
    reshaped = [
        f"{key} {tuple(getattr(given[key], 'shape', ()))} for {tuple(expected[key].shape)}"
        for key in sorted(expected.keys() & given.keys())
        if getattr(given[key], "shape", None) != expected[key].shape
    ]
    parts = [
        f"{len(items)} {kind} (first: {items[0]})"
        for kind, items in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
        if items
    ]
    return "; ".join(parts) or None


def _first_line(error: BaseException) -> str:
    """The first line of an error message, or the error's type."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
