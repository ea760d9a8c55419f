"""The methods the evaluation scores: a function from a detector to its mask and probability."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from slewdark.config import Params
from slewdark.errors import SlewdarkError
from slewdark.io.fits import DetectorImage, ExposureInfo, mask_product_path, read_mask_product

Prediction = tuple[np.ndarray, np.ndarray | None]
MethodFn = Callable[[Path, ExposureInfo, DetectorImage], Prediction]
"""``(exposure file, its header info, one detector) -> (boolean mask, probability or None)``."""


def prediction_method(folder: Path, exposures: list[Path]) -> MethodFn:
    """The product: masks written by the ``predict`` stage into ``folder``.

    Raises
    ------
    SlewdarkError
        When the folder or the product of one of ``exposures`` is missing.
    """
    if not folder.is_dir():
        raise SlewdarkError(f"{folder}: no predictions folder (run the predict stage first)")
    products = [mask_product_path(path, folder) for path in exposures]
    missing = ", ".join(str(product) for product in products if not product.is_file())
    if missing:
        raise SlewdarkError(f"no mask product {missing} (run `slewdark predict` on the held-out set)")

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        return read_mask_product(mask_product_path(path, folder), detector.detector)

    return run


def unet_method(model_path: Path, params: Params, missing_hint: str) -> MethodFn:
    """A UNet checkpoint applied in memory, as ``slewdark predict`` applies it.

    Parameters
    ----------
    model_path
        The checkpoint.
    params
        Validated params (``device``, ``predict`` batch size and autocast).
    missing_hint
        What needs the model and how to make it, for the missing-model message.

    Raises
    ------
    SlewdarkError
        When the checkpoint is missing or unreadable.
    """
    from slewdark.inference.predict import load_unet, predict_probability
    from slewdark.inference.timing import input_timing
    from slewdark.inference.unet_input import detector_input
    from slewdark.io.previous import optional_previous_exposure
    from slewdark.models.device import resolve_device
    from slewdark.models.precision import autocast_dtype

    if not model_path.is_file():
        raise SlewdarkError(f"{model_path}: model not found; {missing_hint}")
    model = load_unet(model_path, resolve_device(params.device))
    dtype = autocast_dtype(model.device, params.predict.autocast)
    batch_size = params.predict.batch_size

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        prev_path = optional_previous_exposure(info) if model.in_channels >= 2 else None
        timing, _ = input_timing(path, info, model.in_channels, prev_path)
        image = detector_input(path, detector, model.normalisation, model.in_channels, prev_path, timing)
        prob = predict_probability(
            model.inference_network(), image, model.tile, model.overlap, batch_size, dtype
        )
        prob[~detector.usable] = 0.0
        return model.mask(prob, image, detector.usable), prob

    return run
