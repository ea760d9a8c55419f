"""The UNet's baselines: astroscrappy, the physics rule, the law fit and the heuristic segmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slewdark.config import AstroscrappyParams, Params, PhysicsBaselineParams
from slewdark.evaluation.methods import MethodFn, Prediction
from slewdark.io.fits import DetectorImage, ExposureInfo
from slewdark.io.previous import previous_detector


def astroscrappy_mask(image: np.ndarray, usable: np.ndarray, settings: AstroscrappyParams) -> np.ndarray:
    """L.A.Cosmic cosmic-ray mask of a detector in electrons (gain 1).

    Unusable pixels are filled with the median of the usable ones and passed as
    the bad-pixel mask, so they neither trigger nor hide detections.

    Parameters
    ----------
    image
        float32 (H, W) electrons; NaN where there are no data.
    usable
        Pixels with data.
    settings
        ``evaluate.astroscrappy``.

    Returns
    -------
    ndarray
        bool (H, W): pixels flagged as cosmic rays.
    """
    import astroscrappy

    filled = np.where(usable, image, np.float32(np.median(image[usable]))).astype(np.float32)
    mask, _ = astroscrappy.detect_cosmics(
        np.ascontiguousarray(filled),
        inmask=np.ascontiguousarray(~usable),
        sigclip=settings.sigclip,
        sigfrac=settings.sigfrac,
        objlim=settings.objlim,
        niter=settings.niter,
        readnoise=settings.readnoise,
        satlevel=settings.satlevel,
        gain=1.0,
    )
    return np.asarray(mask, dtype=bool) & usable


def astroscrappy_method(settings: AstroscrappyParams) -> MethodFn:
    """The astroscrappy baseline."""

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        return astroscrappy_mask(detector.data, detector.usable, settings), None

    return run


def physics_mask(
    prev: DetectorImage | None, shape: tuple[int, ...], cfg: PhysicsBaselineParams
) -> np.ndarray:
    """The physics baseline's mask of one detector.

    Parameters
    ----------
    prev
        The previous exposure's detector, or None when the exposure names none.
    shape
        Shape of the detector's mask.
    cfg
        ``evaluate.physics``.

    Returns
    -------
    ndarray
        bool: where the previous exposure saturated or its median-filtered fluence
        reached ``cfg.level`` (:func:`slewdark.core.brightmap.bright_map`), grown by
        ``cfg.dilation`` px; all False without a previous exposure.
    """
    from slewdark.core.brightmap import bright_map

    if prev is None:
        return np.zeros(shape, bool)
    return bright_map(prev, cfg.level, cfg.dilation, cfg.median)


def physics_method(cfg: PhysicsBaselineParams) -> MethodFn:
    """The physics baseline (:func:`physics_mask`)."""

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        return physics_mask(previous_detector(info, detector.detector), detector.data.shape, cfg), None

    return run


def law_fit_method(params: Params) -> MethodFn:
    """The lab persistence law scaled to each dark (:mod:`slewdark.core.law_fit`), flagged at its mask level.

    Nothing is flagged without a previous exposure or without the dark's ``TSINCE`` and ``EXPTIME``.
    """
    from slewdark.core.law_fit import fit_dark, law_fit_settings, persistence_model
    from slewdark.core.scaling import Scaling

    law, settings = persistence_model(params), law_fit_settings(params)
    scaling = Scaling(**params.scaling.model_dump())

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        prev = previous_detector(info, detector.detector)
        if prev is None or info.tsince is None or info.exptime is None:
            return np.zeros(detector.data.shape, bool), None
        fit = fit_dark(detector, prev, law, (info.tsince, info.exptime), settings, scaling)
        return fit.mask(settings) & detector.usable, None

    return run


def heuristic_segmentation_method(params: Params) -> MethodFn:
    """The cluster-free heuristic (:mod:`slewdark.stages.heuristic_masks`) on each held-out detector."""
    from slewdark.core.heuristic import HeuristicSegmentation

    heuristic = HeuristicSegmentation(params)

    def run(path: Path, info: ExposureInfo, detector: DetectorImage) -> Prediction:
        prev = previous_detector(info, detector.detector)
        return heuristic(detector, prev, info.tsince, info.exptime), None

    return run
