"""The cluster-free heuristic: the study's segmentation of a whole detector, gated on the bright map."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from slewdark.config import Params
from slewdark.core.brightmap import label_bright_map
from slewdark.core.scaling import Scaling, scale_detector
from slewdark.core.segment import segment

if TYPE_CHECKING:
    from slewdark.io.fits import DetectorImage


def segment_floor(params: Params) -> float:
    """``pseudomask.segment.min_sigma`` noise sigmas above the background, in patch units.

    Patches are in noise units (:mod:`slewdark.core.scaling`), so this floor keeps the
    segmentation to persistence that stands out of the noise, whatever else the
    patch holds.
    """
    scaling = Scaling(**params.scaling.model_dump())
    return float(scaling.squash(params.pseudomask.segment.min_sigma))


class HeuristicSegmentation:
    """The heuristic mask of a detector, with the settings of ``params``.

    The detector is scaled as the patches are, segmented over its whole area and,
    given its previous exposure, kept only where that exposure was bright
    (:mod:`slewdark.stages.heuristic_masks` tells the story).
    """

    def __init__(self, params: Params) -> None:
        self.scaling = Scaling(**params.scaling.model_dump())
        self.segment = params.pseudomask.segment
        self.floor = segment_floor(params)
        self.params = params

    def __call__(
        self, detector: DetectorImage, prev: DetectorImage | None, tsince: float | None, exptime: float | None
    ) -> np.ndarray:
        """Boolean mask of ``detector``.

        ``prev`` is its previous exposure's detector, or None; ``tsince`` and
        ``exptime`` the dark's times (None where unknown), which set the bright
        map's level (:func:`slewdark.core.brightmap.label_bright_level`).
        """
        image01 = scale_detector(detector.data, detector.usable, self.scaling).image
        mask = segment(image01, detector.usable, self.segment, self.floor)
        if prev is not None:
            mask &= label_bright_map(prev, self.params, tsince, exptime)
        return mask
